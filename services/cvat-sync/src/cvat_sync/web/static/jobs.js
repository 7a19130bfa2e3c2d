// The job list: stat cards, filters kept in the URL and localStorage, clickable cells, pages, CSV export,
// and the sync button with live progress.
"use strict";

(function () {
  const { api, h, clear, formatDate, formatNumber, debounce, hasRole, showError, initPage, wirePager, showProblem,
    hideProblem, showEmptyRow } = window.Mirante;

  const FIELDS = ["q", "project_id", "assignee", "status", "stage", "state", "updated_from", "updated_to"];
  const CHOICES = {
    status: ["annotation", "validation", "completed"],
    stage: ["annotation", "validation", "acceptance"],
    state: ["new", "in progress", "completed", "rejected"],
  };
  const LABELS = {
    q: "search", project_id: "project", assignee: "assignee", status: "status", stage: "stage", state: "state",
    updated_from: "updated from", updated_to: "updated to",
  };
  const STATUS_CARDS = { annotation: "In annotation", validation: "In validation", completed: "Completed" };
  const STORAGE_KEY = "cvat-sync.jobs.filters";
  const PAGE_SIZE = 50;
  const POLL_MILLISECONDS = 1000;
  const ACTIVE_RUN = new Set(["queued", "running"]);
  const RUN_COUNTS = ["fetched", "created", "updated", "unchanged", "deleted", "failed"];

  const $ = (id) => document.getElementById(id);
  const table = $("jobs-table");
  const tbody = $("jobs-body");
  const pageError = $("page-error");
  const exportLink = $("export-csv");
  const syncButton = $("sync-now");

  let filters = emptyFilters();
  let panelOpen = false;
  let page = 1;
  let pager = null;
  let listController = null;
  let pollTimer = null;
  let principal = null;
  const projectNames = new Map();

  // -- filter state ------------------------------------------------------------------------------------------

  function emptyFilters() {
    return Object.fromEntries(FIELDS.map((key) => [key, ""]));
  }

  // Values come from the URL or localStorage, both editable by anyone: keep only well-formed ones.
  function cleanFilters(read) {
    const text = (value, max) => (typeof value === "string" ? value.trim().slice(0, max) : "");
    const result = emptyFilters();
    result.q = text(read("q"), 200);
    const project = text(read("project_id"), 18);
    result.project_id = /^[1-9][0-9]*$/.test(project) ? project : "";
    result.assignee = text(read("assignee"), 150);
    for (const key of ["status", "stage", "state"]) {
      const value = text(read(key), 30);
      result[key] = CHOICES[key].includes(value) ? value : "";
    }
    for (const key of ["updated_from", "updated_to"]) {
      const value = text(read(key), 10);
      result[key] = /^\d{4}-\d{2}-\d{2}$/.test(value) ? value : "";
    }
    return result;
  }

  function savedState() {
    try {
      const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || "null");
      if (saved && typeof saved === "object") {
        const values = saved.filters && typeof saved.filters === "object" ? saved.filters : {};
        return { filters: cleanFilters((key) => values[key]), open: saved.open === true };
      }
    } catch (error) {
      // A damaged entry is replaced on the next change.
    }
    return { filters: emptyFilters(), open: false };
  }

  // The URL wins when it says anything (a shared link); otherwise the last state kept in this browser.
  function readState() {
    const params = new URLSearchParams(location.search);
    const urlSpeaks = FIELDS.some((key) => params.has(key)) || params.has("filters") || params.has("page");
    if (urlSpeaks) {
      filters = cleanFilters((key) => params.get(key));
      panelOpen = params.get("filters") === "open";
      const wanted = Number.parseInt(params.get("page") || "1", 10);
      page = Number.isInteger(wanted) && wanted > 0 ? wanted : 1;
    } else {
      const saved = savedState();
      filters = saved.filters;
      panelOpen = saved.open;
      page = 1;
    }
    writeState("replace");
  }

  function writeState(mode) {
    const params = new URLSearchParams();
    for (const key of FIELDS) if (filters[key]) params.set(key, filters[key]);
    if (panelOpen) params.set("filters", "open");
    if (page > 1) params.set("page", String(page));
    const search = params.toString();
    const url = location.pathname + (search ? `?${search}` : "");
    if (url !== location.pathname + location.search) {
      if (mode === "push") history.pushState(null, "", url);
      else history.replaceState(null, "", url);
    }
    try {
      localStorage.setItem(STORAGE_KEY, JSON.stringify({ open: panelOpen, filters }));
    } catch (error) {
      // Storage full or disabled: the URL still carries the state.
    }
  }

  function localDayBound(day, end) {
    const [year, month, date] = day.split("-").map(Number);
    const moment = end ? new Date(year, month - 1, date, 23, 59, 59, 999) : new Date(year, month - 1, date);
    return moment.toISOString();
  }

  // The API's query for the current filters: the same for the list, the stats and the export.
  function apiQuery() {
    const query = new URLSearchParams();
    for (const key of ["q", "project_id", "assignee", "status", "stage", "state"]) {
      if (filters[key]) query.set(key, filters[key]);
    }
    if (filters.updated_from) query.set("updated_from", localDayBound(filters.updated_from, false));
    if (filters.updated_to) query.set("updated_to", localDayBound(filters.updated_to, true));
    return query;
  }

  function setFilter(key, value, mode = "push") {
    filters[key] = value;
    page = 1;
    writeState(mode);
    showFilters();
    load();
  }

  // -- filter controls ---------------------------------------------------------------------------------------

  function ensureProjectOption(projectId) {
    const select = $("f-project_id");
    if (!projectId || [...select.options].some((option) => option.value === projectId)) return;
    const name = projectNames.get(projectId);
    select.append(h("option", { value: projectId }, name ? `${name} (#${projectId})` : `#${projectId}`));
  }

  function showFilters() {
    for (const key of FIELDS) {
      const control = $(`f-${key}`);
      if (key === "project_id") ensureProjectOption(filters.project_id);
      // Leave the search box alone while it is being typed in.
      if (key === "q" && document.activeElement === control) continue;
      control.value = filters[key];
    }
    $("filters-panel").hidden = !panelOpen;
    $("filters-toggle").setAttribute("aria-expanded", String(panelOpen));
    const active = FIELDS.filter((key) => key !== "q" && filters[key]);
    const counter = $("filters-count");
    counter.textContent = String(active.length);
    counter.hidden = active.length === 0;
    const chips = clear($("filter-chips"));
    for (const key of active) {
      let shown = filters[key];
      if (key === "project_id") shown = projectNames.get(shown) || `#${shown}`;
      chips.append(
        h("span", { class: "chip", dataset: { filter: key } },
          `${LABELS[key]}: ${shown}`,
          h("button", { type: "button", title: `Remove the ${LABELS[key]} filter`, "aria-label": `Remove the ${LABELS[key]} filter`,
            onclick: () => setFilter(key, "") }, "×")),
      );
    }
  }

  function wireFilters() {
    const search = $("f-q");
    const typed = debounce(() => setFilter("q", search.value.trim(), "replace"), 300);
    search.addEventListener("input", typed);
    search.addEventListener("keydown", (event) => {
      if (event.key === "Enter") setFilter("q", search.value.trim(), "replace");
    });
    for (const key of FIELDS.filter((field) => field !== "q")) {
      const control = $(`f-${key}`);
      control.addEventListener("change", () => setFilter(key, control.value.trim()));
    }
    $("filters-toggle").addEventListener("click", () => {
      panelOpen = !panelOpen;
      writeState("replace");
      showFilters();
    });
    $("filters-reset").addEventListener("click", () => {
      filters = emptyFilters();
      search.value = "";
      setFilter("q", "");
    });
    tbody.addEventListener("click", (event) => {
      const cell = event.target.closest("[data-filter-key]");
      if (cell && tbody.contains(cell)) setFilter(cell.dataset.filterKey, cell.dataset.filterValue);
    });
    $("stats").addEventListener("click", (event) => {
      const card = event.target.closest("[data-status-filter]");
      if (!card) return;
      const status = card.dataset.statusFilter;
      setFilter("status", filters.status === status ? "" : status);
    });
    pager = wirePager(goToPage);
    window.addEventListener("popstate", () => {
      readState();
      showFilters();
      load();
    });
  }

  function goToPage(number) {
    page = Math.max(1, number);
    writeState("push");
    load();
    window.scrollTo(0, 0);
  }

  // -- list, stats, pages ------------------------------------------------------------------------------------

  function filterCell(key, value, text, title) {
    return h("button", { type: "button", class: "cell-filter", title, dataset: { filterKey: key, filterValue: String(value) } }, text);
  }

  function statusBadge(status) {
    const known = CHOICES.status.includes(status) ? status : "other";
    return h("button", {
      type: "button", class: `badge status-${known}`, title: `Show only status ${status}`,
      dataset: { filterKey: "status", filterValue: status },
    }, status);
  }

  function jobRow(job) {
    const detail = `/jobs/${encodeURIComponent(job.id)}`;
    const task = job.task_name || (job.task_id ? `task #${job.task_id}` : "—");
    const project = job.project_id
      ? filterCell("project_id", job.project_id, job.project_name || `#${job.project_id}`, "Show only this project")
      : h("span", { class: "muted" }, "—");
    const assignee = job.assignee
      ? filterCell("assignee", job.assignee, job.assignee, "Show only this assignee's jobs")
      : h("span", { class: "muted" }, "unassigned");
    if (job.project_id && job.project_name) projectNames.set(String(job.project_id), job.project_name);
    return h("tr", { dataset: { jobId: job.id } },
      h("td", { class: "job-id" }, h("a", { href: detail }, `#${job.id}`)),
      h("td", { class: "task" }, h("a", { href: detail }, task)),
      h("td", { class: "project" }, project),
      h("td", { class: "assignee" }, assignee),
      h("td", { class: "status" }, statusBadge(job.status)),
      h("td", { class: "stage" }, `${job.stage} · ${job.state}`),
      h("td", { class: "num annotations" }, formatNumber(job.total_annotations)),
      h("td", { class: "num" }, formatNumber(job.frame_count)),
      h("td", { class: "updated" },
        h("time", { datetime: job.cvat_updated_at, title: job.cvat_updated_at }, formatDate(job.cvat_updated_at))),
    );
  }

  function showRows(jobs) {
    clear(tbody);
    if (jobs.length > 0) {
      tbody.append(...jobs.map(jobRow));
      return;
    }
    if (FIELDS.some((key) => filters[key])) {
      showEmptyRow(tbody, 9, {
        title: "No jobs match these filters.",
        text: "Loosen or clear the filters to see more jobs.",
        action: h("button", { type: "button", onclick: () => $("filters-reset").click() }, "Clear the filters"),
      });
      return;
    }
    showEmptyRow(tbody, 9, {
      title: "No jobs mirrored yet.",
      text: principal && hasRole(principal, "operator")
        ? "Pull the jobs from CVAT with “Sync now”; CVAT's webhooks keep them current afterwards."
        : "Jobs appear after a sync from CVAT. Ask an operator to run one.",
    });
  }

  function card(stat, label, value, sub, statusFilter) {
    const parts = [
      h("span", { class: "card-label" }, label),
      h("span", { class: "card-value" }, formatNumber(value)),
      sub ? h("span", { class: "card-sub" }, sub) : null,
    ];
    if (!statusFilter) return h("div", { class: "card", dataset: { stat } }, parts);
    return h("button", {
      type: "button", class: "card", title: `Show only status ${statusFilter}`,
      "aria-pressed": String(filters.status === statusFilter), dataset: { stat, statusFilter },
    }, parts);
  }

  function showStats(stats) {
    const totals = stats.totals;
    const byStatus = new Map(stats.by_status.map((item) => [item.status, item]));
    const cards = [
      card("jobs", "Jobs", totals.jobs),
      card("tasks", "Tasks", totals.tasks),
      card("projects", "Projects", totals.projects),
      card("annotations", "Annotations", totals.annotations,
        `manual ${formatNumber(totals.manual_annotations)} · interpolated ${formatNumber(totals.interpolated_annotations)}`),
      ...CHOICES.status.map((status) => {
        const item = byStatus.get(status) || { jobs: 0, annotations: 0 };
        return card(`status-${status}`, STATUS_CARDS[status], item.jobs, `${formatNumber(item.annotations)} annotations`, status);
      }),
    ];
    clear($("stats")).append(...cards);
  }

  async function load() {
    if (listController) listController.abort();
    const controller = new AbortController();
    listController = controller;
    const query = apiQuery();
    const search = query.toString();
    exportLink.href = `/api/v1/jobs/export.csv${search ? `?${search}` : ""}`;
    const listQuery = new URLSearchParams(query);
    listQuery.set("page", String(page));
    listQuery.set("page_size", String(PAGE_SIZE));
    table.setAttribute("aria-busy", "true");
    try {
      const [list, stats] = await Promise.all([
        api("/api/v1/jobs", { query: listQuery, signal: controller.signal }),
        api("/api/v1/stats", { query, signal: controller.signal }),
      ]);
      if (list.results.length === 0 && page > 1 && list.count > 0) {
        goToPage(pager.lastPage(PAGE_SIZE, list.count));
        return;
      }
      pageError.hidden = true;
      hideProblem();
      showRows(list.results);
      pager.show(page, PAGE_SIZE, list.count, list.results.length, "jobs");
      showStats(stats);
      showFilters();
      table.removeAttribute("aria-busy");
    } catch (error) {
      if (controller.signal.aborted) return;
      table.removeAttribute("aria-busy");
      showProblem(error, { retry: load });
    }
  }

  // Names for the project menu and the assignee suggestions, from every job rather than the filtered ones.
  async function loadChoices() {
    try {
      const stats = await api("/api/v1/stats", { query: "top=100" });
      const select = $("f-project_id");
      for (const project of stats.by_project) {
        if (project.project_id === null) continue;
        const id = String(project.project_id);
        if (project.project_name) projectNames.set(id, project.project_name);
        const label = project.project_name ? `${project.project_name} (#${id})` : `#${id}`;
        const existing = [...select.options].find((option) => option.value === id);
        if (existing) existing.textContent = label;
        else select.append(h("option", { value: id }, label));
      }
      const names = clear($("assignee-options"));
      for (const person of stats.by_assignee) {
        if (person.assignee) names.append(h("option", { value: person.assignee }));
      }
      showFilters();
    } catch (error) {
      // The menus are a convenience; the list itself reports errors.
    }
  }

  // -- CSV export --------------------------------------------------------------------------------------------

  // The export needs the bearer token, so it is fetched here and handed to the browser as a file.
  async function exportCsv(event) {
    event.preventDefault();
    if (exportLink.getAttribute("aria-disabled") === "true") return;
    exportLink.setAttribute("aria-disabled", "true");
    exportLink.textContent = "Exporting…";
    try {
      const response = await api("/api/v1/jobs/export.csv", { query: apiQuery(), raw: true, accept: "text/csv" });
      const blob = await response.blob();
      const named = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
      const url = URL.createObjectURL(blob);
      const link = h("a", { href: url, download: named ? named[1] : "cvat-jobs.csv", hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (error) {
      showError(pageError, error);
    } finally {
      exportLink.removeAttribute("aria-disabled");
      exportLink.textContent = "Export CSV";
    }
  }

  // -- sync --------------------------------------------------------------------------------------------------

  function showRun(run) {
    const panel = $("sync-panel");
    panel.hidden = false;
    panel.dataset.runId = String(run.id);
    panel.dataset.status = run.status;
    $("sync-title").textContent = `Sync run #${run.id}`;
    const expected = run.expected === null ? "?" : formatNumber(run.expected);
    const texts = {
      queued: "queued, waiting to start…",
      running: `running: fetched ${formatNumber(run.fetched)} of ${expected} jobs`,
      success: `finished${run.duration_seconds === null ? "" : ` in ${run.duration_seconds.toFixed(1)} s`}`,
      error: "failed",
    };
    $("sync-text").textContent = texts[run.status] || run.status;
    const bar = $("sync-progress");
    if (run.progress === null) bar.removeAttribute("value");
    else bar.value = run.progress;
    const counts = clear($("sync-counts"));
    for (const key of RUN_COUNTS) {
      counts.append(h("span", { dataset: { count: key } }, h("b", {}, formatNumber(run[key])), ` ${key}`));
    }
    const errorBox = $("sync-error");
    errorBox.hidden = run.status !== "error";
    errorBox.textContent = run.status === "error" ? run.error || "the sync failed" : "";
  }

  function follow(run) {
    clearTimeout(pollTimer);
    showRun(run);
    if (ACTIVE_RUN.has(run.status)) {
      syncButton.disabled = true;
      pollTimer = setTimeout(() => poll(run.id, 0), POLL_MILLISECONDS);
      return;
    }
    syncButton.disabled = false;
    showLatestRun(run);
    if (run.status === "success") {
      load();
      loadChoices();
    }
  }

  async function poll(runId, failures) {
    try {
      follow(await api(`/api/v1/sync-runs/${encodeURIComponent(runId)}`));
    } catch (error) {
      if (error.redirecting) return;
      if (failures < 5) pollTimer = setTimeout(() => poll(runId, failures + 1), POLL_MILLISECONDS * 2);
      else syncFailed(error);
    }
  }

  function syncFailed(error) {
    syncButton.disabled = false;
    if (error.redirecting) return;
    $("sync-panel").hidden = false;
    $("sync-panel").dataset.status = "error";
    $("sync-title").textContent = "Sync";
    $("sync-text").textContent = "could not start";
    clear($("sync-counts"));
    showError($("sync-error"), error);
  }

  async function startSync() {
    syncButton.disabled = true;
    $("sync-error").hidden = true;
    try {
      // Recorded as started from the pages, not through the API.
      follow(await api("/api/v1/sync-runs", { method: "POST", body: { trigger: "web" } }));
    } catch (error) {
      const running = error.status === 409 && error.details ? error.details.run_id : null;
      if (!Number.isInteger(running)) {
        syncFailed(error);
        return;
      }
      // One run at a time: show the one already going instead.
      try {
        follow(await api(`/api/v1/sync-runs/${running}`));
      } catch (followError) {
        syncFailed(followError);
      }
    }
  }

  const TRIGGERS = { cli: "from the command line", api: "through the API", web: "with Sync now" };

  // "Last sync: 2025-01-06 14:05 with Sync now by alice · success · 3 created, … · All runs"
  function showLatestRun(run) {
    const line = clear($("last-sync"));
    const runsLink = hasRole(principal, "operator") ? h("a", { href: "/sync-runs", id: "runs-link" }, "All runs") : null;
    if (!run) {
      line.append("No sync has run yet.", runsLink ? " " : "", runsLink || "");
      line.dataset.status = "none";
      return;
    }
    line.dataset.status = run.status;
    line.dataset.runId = String(run.id);
    const when = run.finished_at || run.started_at || run.created_at;
    const by = run.started_by ? ` by ${run.started_by}` : "";
    line.append(
      "Last sync: ",
      h("time", { datetime: when, title: when }, formatDate(when)),
      ` ${TRIGGERS[run.trigger] || run.trigger}${by}`,
      h("span", { class: `badge run-${run.status}` }, run.status),
      run.status === "error" ? (run.error || "failed") : run.summary,
      runsLink ? " · " : "",
      runsLink || "",
    );
  }

  async function resumeActiveRun() {
    try {
      const runs = await api("/api/v1/sync-runs", { query: "page_size=1" });
      const latest = runs.results[0];
      showLatestRun(latest || null);
      if (latest && ACTIVE_RUN.has(latest.status)) follow(latest);
    } catch (error) {
      // Only a courtesy: the list reports its own errors and the button still works.
    }
  }

  // -- start -------------------------------------------------------------------------------------------------

  async function main() {
    readState();
    showFilters();
    wireFilters();
    exportLink.addEventListener("click", exportCsv);
    try {
      principal = await initPage();
    } catch (error) {
      showProblem(error, { retry: () => location.reload() });
      return;
    }
    if (hasRole(principal, "operator")) {
      syncButton.hidden = false;
      syncButton.addEventListener("click", startSync);
    }
    await Promise.all([load(), loadChoices(), resumeActiveRun()]);
  }

  main();
})();
