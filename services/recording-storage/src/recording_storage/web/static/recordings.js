// The recordings, newest start first, filtered by WATS user, machine, server, connection type and start date.
// Filters and the page are kept in the URL, so a filtered list can be shared.
"use strict";

(function () {
  const { api, h, clear, formatDate, initPage, readQuery, writeQuery, wirePager, showProblem, hideProblem,
    showEmptyRow } = window.Mirante;
  const { formatBytes } = window.RecordingSizes;

  const PAGE_SIZE = 25;
  const COLUMNS = 7;
  const TEXT_FILTERS = ["wats_user", "machine", "server", "connection_type"];
  const DATE = /^\d{4}-\d{2}-\d{2}$/;
  const QUERY = {
    page: { integer: true, min: 1, max: 1000000, default: 1 },
    wats_user: { maxLength: 255 },
    machine: { maxLength: 255 },
    server: { maxLength: 255 },
    connection_type: { maxLength: 255 },
    from: { pattern: DATE },
    until: { pattern: DATE },
  };
  const $ = (id) => document.getElementById(id);
  const tbody = $("recordings-body");

  let state = readQuery(QUERY);
  let pager = null;
  let controller = null;

  // A date picked in the form is a local day: `from` starts at its local midnight, `until` includes the day.
  function startOf(day, plusDays = 0) {
    const [year, month, date] = day.split("-").map(Number);
    return new Date(year, month - 1, date + plusDays).toISOString();
  }

  function apiQuery() {
    const query = new URLSearchParams({ page: String(state.page), page_size: String(PAGE_SIZE) });
    for (const key of TEXT_FILTERS) if (state[key]) query.set(key, state[key]);
    if (state.from) query.set("start", startOf(state.from));
    if (state.until) query.set("end", startOf(state.until, 1));
    return query;
  }

  function filtered() {
    return TEXT_FILTERS.some((key) => state[key]) || Boolean(state.from || state.until);
  }

  function cell(value) {
    return value ? value : h("span", { class: "muted" }, "—");
  }

  function recordingRow(recording) {
    const server = recording.server_name && recording.server_ip
      ? `${recording.server_name} (${recording.server_ip})` : recording.server_name || recording.server_ip;
    return h("tr", { dataset: { recordingId: recording.id } },
      h("td", {}, h("time", { datetime: recording.start_time || "" }, formatDate(recording.start_time))),
      h("td", { class: "wats-user" }, cell(recording.wats_user)),
      h("td", { class: "machine" }, cell(recording.wats_user_machine)),
      h("td", { class: "server" }, cell(server)),
      h("td", { class: "type" }, cell(recording.connection_type)),
      h("td", { class: "num" }, formatBytes(recording.video_size)),
      h("td", {}, h("a", { class: "button ghost", href: `/recordings/${encodeURIComponent(recording.id)}` }, "Play")),
    );
  }

  function fillForm() {
    for (const key of [...TEXT_FILTERS, "from", "until"]) $(`f-${key}`).value = state[key] || "";
  }

  async function load() {
    if (controller) controller.abort();
    const current = new AbortController();
    controller = current;
    try {
      const page = await api("/api/v1/recordings", { query: apiQuery(), signal: current.signal });
      if (page.results.length === 0 && state.page > 1 && page.count > 0) {
        go({ page: pager.lastPage(PAGE_SIZE, page.count) });
        return;
      }
      hideProblem();
      if (page.results.length === 0) {
        showEmptyRow(tbody, COLUMNS, filtered() ? {
          title: "No recording matches these filters",
          text: "Filters match exactly: check the spelling, or widen the dates.",
          action: h("button", { type: "button", class: "primary", onclick: reset }, "Clear the filters"),
        } : {
          title: "No recording yet",
          text: "Recordings appear here once a WATS recorder has uploaded and finished one.",
        });
      } else {
        clear(tbody).append(...page.results.map(recordingRow));
      }
      pager.show(state.page, PAGE_SIZE, page.count, page.results.length, ["recording", "recordings"]);
    } catch (error) {
      if (current.signal.aborted) return;
      showProblem(error, { retry: load });
    }
  }

  function go(changes) {
    state = { ...state, ...changes };
    writeQuery(state, QUERY, "push");
    load();
  }

  function reset() {
    state = readQuery(QUERY, "");
    fillForm();
    go({ page: 1 });
  }

  async function main() {
    try {
      await initPage();
    } catch (error) {
      showProblem(error, { retry: () => location.reload() });
      return;
    }
    fillForm();
    $("recordings-view").hidden = false;
    pager = wirePager((page) => go({ page }));
    $("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      const changes = { page: 1 };
      for (const key of [...TEXT_FILTERS, "from", "until"]) changes[key] = $(`f-${key}`).value.trim();
      go(changes);
    });
    $("filters-reset").addEventListener("click", reset);
    window.addEventListener("popstate", () => {
      state = readQuery(QUERY);
      fillForm();
      load();
    });
    await load();
  }

  main();
})();
