// The webhook audit log (admins): filters by status and event; a row opens to show the body and headers.
"use strict";

(function () {
  const { api, h, clear, formatDate, debounce, initPage, readQuery, writeQuery, wirePager, showProblem,
    hideProblem, showEmptyRow } = window.Mirante;

  const STATUSES = ["pending", "processing", "success", "error", "rejected", "duplicate", "ignored"];
  const QUERY = {
    status: { choices: STATUSES },
    event_type: { maxLength: 100 },
    page: { integer: true, min: 1, default: 1 },
  };
  const PAGE_SIZE = 50;
  const COLUMNS = 9;
  const $ = (id) => document.getElementById(id);
  const tbody = $("log-body");

  let status = "";
  let eventType = "";
  let page = 1;
  let pager = null;
  let controller = null;

  function readUrl() {
    ({ status, event_type: eventType, page } = readQuery(QUERY));
    $("f-status").value = status;
    $("f-event").value = eventType;
  }

  function writeUrl() {
    writeQuery({ status, event_type: eventType, page }, QUERY);
  }

  function statusBadge(value) {
    const known = STATUSES.includes(value) ? value : "other";
    return h("span", { class: `badge log-${known}` }, value);
  }

  function detailContent(log) {
    const headers = h("table", { class: "headers-table" },
      h("tbody", {}, Object.entries(log.headers || {}).map(([name, value]) =>
        h("tr", {}, h("td", {}, name), h("td", {}, typeof value === "string" ? value : JSON.stringify(value))))));
    const parsed = log.payload !== null && log.payload !== undefined;
    const body = parsed ? JSON.stringify(log.payload, null, 2) : log.body;
    return h("div", { class: "log-detail-grid" },
      h("section", { dataset: { part: "headers" } }, h("h2", {}, "Headers"), headers,
        h("p", { class: "muted mono hash" }, `body sha256 ${log.body_sha256}`),
        log.webhook_id === null ? null : h("p", { class: "muted" }, `CVAT webhook #${log.webhook_id}`)),
      h("section", { dataset: { part: "body" } },
        h("h2", {}, "Body ", h("span", { class: "muted" }, parsed ? "(JSON, indented)" : "(as received)")),
        h("pre", { class: "log-body-text" }, body)));
  }

  async function toggle(row, button, log) {
    const open = button.getAttribute("aria-expanded") === "true";
    const next = row.nextElementSibling;
    if (open) {
      button.setAttribute("aria-expanded", "false");
      button.textContent = "▸";
      if (next && next.classList.contains("log-detail")) next.remove();
      return;
    }
    button.setAttribute("aria-expanded", "true");
    button.textContent = "▾";
    const cell = h("td", { colspan: COLUMNS }, h("span", { class: "muted" }, "Loading…"));
    const detailRow = h("tr", { class: "log-detail", dataset: { logId: log.id } }, cell);
    row.after(detailRow);
    try {
      const detail = await api(`/api/v1/webhook-logs/${encodeURIComponent(log.id)}`);
      clear(cell).append(detailContent(detail));
    } catch (error) {
      clear(cell).append(h("span", { class: "error" }, error.message || String(error)));
    }
  }

  function logRow(log) {
    const button = h("button", {
      type: "button", class: "row-toggle", "aria-expanded": "false", title: "Show body and headers",
      "aria-label": `Show body and headers of entry ${log.id}`,
    }, "▸");
    const row = h("tr", { class: "log-row", dataset: { logId: log.id } },
      h("td", {}, button),
      h("td", {}, h("time", { datetime: log.received_at }, formatDate(log.received_at, { seconds: true }))),
      h("td", { class: "event" }, log.event_type || h("span", { class: "muted" }, "—")),
      h("td", { class: "status" }, statusBadge(log.status)),
      h("td", {}, log.signature_valid ? "valid" : h("span", { class: "muted" }, "invalid")),
      h("td", {}, log.job_id ? h("a", { href: `/jobs/${encodeURIComponent(log.job_id)}` }, `#${log.job_id}`) : "—"),
      h("td", { class: "mono" }, log.source_ip || "—"),
      h("td", { class: "message" }, log.error_message || ""),
      h("td", {}, formatDate(log.processed_at, { seconds: true })),
    );
    row.addEventListener("click", (event) => {
      if (event.target.closest("a")) return;
      toggle(row, button, log);
    });
    return row;
  }

  async function load() {
    if (controller) controller.abort();
    const current = new AbortController();
    controller = current;
    const query = new URLSearchParams({ page: String(page), page_size: String(PAGE_SIZE) });
    if (status) query.set("status", status);
    if (eventType) query.set("event_type", eventType);
    try {
      const logs = await api("/api/v1/webhook-logs", { query, signal: current.signal });
      hideProblem();
      clear(tbody);
      if (logs.results.length === 0 && (status || eventType)) {
        showEmptyRow(tbody, COLUMNS, { title: "No webhook requests match.", text: "Change the status or event." });
      } else if (logs.results.length === 0) {
        showEmptyRow(tbody, COLUMNS, {
          title: "No webhook has arrived yet.",
          text: "Add a webhook in CVAT (project or organization → Webhooks) pointing at /api/v1/webhooks/cvat " +
            "with the secret of CVAT_SYNC_WEBHOOK_SECRET; every request it sends is listed here.",
        });
      } else {
        tbody.append(...logs.results.map(logRow));
      }
      pager.show(page, PAGE_SIZE, logs.count, logs.results.length, "requests");
    } catch (error) {
      if (current.signal.aborted) return;
      if (error.status === 403) error.message = "The webhook log is for admins.";
      showProblem(error, { retry: load, forbidden: "Ask an admin to open it for you." });
    }
  }

  function changed() {
    page = 1;
    writeUrl();
    load();
  }

  async function main() {
    try {
      await initPage({ role: "admin", denied: "The webhook log is for admins." });
    } catch (error) {
      showProblem(error, { retry: () => location.reload(), forbidden: "Ask an admin to open it for you." });
      return;
    }
    $("log-view").hidden = false;
    readUrl();
    $("f-status").addEventListener("change", () => {
      status = $("f-status").value;
      changed();
    });
    const typed = debounce(() => {
      eventType = $("f-event").value.trim();
      changed();
    }, 300);
    $("f-event").addEventListener("input", typed);
    $("refresh").addEventListener("click", load);
    pager = wirePager((wanted) => { page = Math.max(1, wanted); writeUrl(); load(); });
    await load();
  }

  main();
})();
