// The sync runs, newest first (operators): when, from where, by whom, what each did, how long it took and why
// it failed. Pages are kept in the URL.
"use strict";

(function () {
  const { api, h, clear, formatDate, formatNumber, initPage, readQuery, writeQuery, wirePager, showProblem,
    hideProblem, showEmptyRow } = window.Mirante;

  const PAGE_SIZE = 25;
  const COLUMNS = 9;
  const TRIGGERS = { cli: "command line", api: "API", web: "Sync now button" };
  const QUERY = { page: { integer: true, min: 1, max: 1000000, default: 1 } };
  const DENIED = "The sync runs are for operators.";
  const $ = (id) => document.getElementById(id);
  const tbody = $("runs-body");

  let page = 1;
  let pager = null;
  let controller = null;

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  }

  function runRow(run) {
    return h("tr", { class: `run-${run.status}`, dataset: { runId: String(run.id) } },
      h("td", {}, `#${run.id}`),
      h("td", {}, h("time", { datetime: run.created_at, title: run.created_at }, formatDate(run.created_at))),
      h("td", { class: "trigger" }, TRIGGERS[run.trigger] || run.trigger),
      h("td", { class: "started-by" }, run.started_by || h("span", { class: "muted" }, "—")),
      h("td", { class: "outcome" }, h("span", { class: `badge run-${run.status}` }, run.status)),
      h("td", { class: "summary wrap" }, run.summary),
      h("td", { class: "num" }, formatNumber(run.fetched)),
      h("td", { class: "num duration" }, duration(run.duration_seconds)),
      h("td", { class: "error-text" }, run.error || ""),
    );
  }

  async function load() {
    if (controller) controller.abort();
    const current = new AbortController();
    controller = current;
    const query = new URLSearchParams({ page: String(page), page_size: String(PAGE_SIZE) });
    try {
      const runs = await api("/api/v1/sync-runs", { query, signal: current.signal });
      if (runs.results.length === 0 && page > 1 && runs.count > 0) {
        go(pager.lastPage(PAGE_SIZE, runs.count));
        return;
      }
      hideProblem();
      if (runs.results.length === 0) {
        showEmptyRow(tbody, COLUMNS, {
          title: "No sync has run yet",
          text: "Jobs reach the mirror through syncs and CVAT's webhooks. Start the first sync with “Sync now” on " +
            "the job list, or run `cvat-sync sync` on the server.",
          action: h("a", { class: "button primary", href: "/" }, "Go to the job list"),
        });
      } else {
        clear(tbody).append(...runs.results.map(runRow));
      }
      pager.show(page, PAGE_SIZE, runs.count, runs.results.length, "runs");
    } catch (error) {
      if (current.signal.aborted) return;
      showProblem(error, { retry: load });
    }
  }

  function go(wanted) {
    page = Math.max(1, wanted);
    writeQuery({ page }, QUERY, "push");
    load();
  }

  async function main() {
    try {
      await initPage({ role: "operator", denied: DENIED });
    } catch (error) {
      showProblem(error, { retry: () => location.reload() });
      return;
    }
    page = readQuery(QUERY).page;
    $("runs-view").hidden = false;
    $("refresh").hidden = false;
    $("refresh").addEventListener("click", load);
    pager = wirePager(go);
    window.addEventListener("popstate", () => {
      page = readQuery(QUERY).page;
      load();
    });
    await load();
  }

  main();
})();
