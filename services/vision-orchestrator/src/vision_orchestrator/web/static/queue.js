// The queue (operators): pending inspections in the order dispatch takes them (priority, then longest queued),
// refreshed live. The list comes from the inspections API; the estimated waits and per-machine assignments come
// from GET /api/v1/orchestrator/queue/ when the server has it, and their column stays hidden, with a note, when not.
"use strict";

(function () {
  const { api, h, clear, formatDate, formatNumber, initPage, readQuery, writeQuery, wirePager, showProblem,
    hideProblem, showEmptyRow } = window.Mirante;
  const { poll, relativeTime, duration, DENIED } = window.Vision;

  const PAGE_SIZE = 50;
  const COLUMNS = 8;
  const QUERY = { page: { integer: true, min: 1, max: 1000000, default: 1 } };
  const $ = (id) => document.getElementById(id);
  const tbody = $("queue-body");

  let page = readQuery(QUERY).page;
  let pager = null;
  let poller = null;

  // The queue endpoint's answer as { waits: Map(id -> seconds), assignments }, or { note } saying why there is none.
  async function loadQueue() {
    try {
      const queue = await api("/api/v1/orchestrator/queue/");
      const waits = new Map((queue.pending_inspections || []).map((item) => [item.id, item.estimated_wait_time]));
      return { waits, assignments: queue.machine_assignments || {} };
    } catch (error) {
      if (error && error.redirecting) throw error;
      if (error && error.status === 404) {
        return { note: "Estimated waits are not shown: this server does not offer the queue endpoint (GET /api/v1/orchestrator/queue/ answered 404)." };
      }
      return { note: `Estimated waits are not shown: the queue endpoint failed (${error.message}).` };
    }
  }

  function inspectionRow(inspection, position, waits) {
    const href = `/inspections/${encodeURIComponent(inspection.id)}`;
    const wait = waits && waits.has(inspection.id) ? duration(waits.get(inspection.id)) : "—";
    return h("tr", { dataset: { inspectionId: inspection.id } },
      h("td", { class: "num position" }, formatNumber(position)),
      h("td", { class: "inspection wrap" }, h("a", { href }, inspection.name), h("div", { class: "mono muted" }, inspection.id)),
      h("td", { class: "type" }, inspection.inspection_type),
      h("td", { class: "num priority" }, formatNumber(inspection.priority)),
      h("td", { class: "queued" },
        h("time", { datetime: inspection.queued_at, title: formatDate(inspection.queued_at, { seconds: true }) },
          relativeTime(inspection.queued_at))),
      h("td", { class: "target mono" }, inspection.target_machine_id || h("span", { class: "muted" }, "any")),
      h("td", { class: "dispatch wrap" }, inspection.last_dispatch_error
        ? h("span", { class: "error-text", title: inspection.last_dispatch_error },
          `${formatNumber(inspection.dispatch_attempts)} failed: ${inspection.last_dispatch_error}`)
        : h("span", { class: "muted" }, "—")),
      h("td", { class: "num col-wait wait" }, wait),
    );
  }

  function showQueue(queue) {
    const note = $("wait-note");
    $("queue-table").classList.toggle("no-wait", !queue.waits);
    note.hidden = !queue.note;
    note.textContent = queue.note || "";
    const entries = Object.entries(queue.assignments || {});
    $("assignments-panel").hidden = entries.length === 0;
    clear($("assignments-body")).append(...entries.map(([machineId, assignment]) =>
      h("tr", { dataset: { machineId } },
        h("td", { class: "mono" }, machineId),
        h("td", { class: "num" }, formatNumber(assignment.current_inspections)),
        h("td", { class: "num" }, formatNumber(assignment.queue_position)))));
  }

  async function load() {
    try {
      const query = new URLSearchParams({
        status: "pending", sort: "priority", page: String(page), page_size: String(PAGE_SIZE),
      });
      const [list, queue] = await Promise.all([api("/api/v1/inspections/", { query }), loadQueue()]);
      if (list.results.length === 0 && page > 1 && list.count > 0) {
        go(pager.lastPage(PAGE_SIZE, list.count));
        return true;
      }
      hideProblem();
      showQueue(queue);
      if (list.results.length === 0) {
        showEmptyRow(tbody, COLUMNS, {
          title: "Nothing is waiting",
          text: "Every inspection has been given to a machine or has finished. New ones wait here until a machine has room.",
          action: h("a", { class: "button", href: "/machines" }, "See the machines"),
        });
      } else {
        const first = (page - 1) * PAGE_SIZE + 1;
        clear(tbody).append(...list.results.map((item, index) => inspectionRow(item, first + index, queue.waits)));
      }
      pager.show(page, PAGE_SIZE, list.count, list.results.length, ["pending inspection", "pending inspections"]);
      return true;
    } catch (error) {
      showProblem(error, { retry: () => poller.now() });
      return false;
    }
  }

  function go(wanted) {
    page = Math.max(1, wanted);
    writeQuery({ page }, QUERY, "push");
    poller.now();
  }

  async function main() {
    try {
      await initPage({ role: "operator", denied: DENIED });
    } catch (error) {
      showProblem(error, { retry: () => location.reload() });
      return;
    }
    $("queue-view").hidden = false;
    pager = wirePager(go);
    window.addEventListener("popstate", () => {
      page = readQuery(QUERY).page;
      poller.now();
    });
    poller = poll(load, { interval: 3000, status: $("live-status") });
  }

  main();
})();
