// The machine board (operators): each machine's status, load, last heartbeat and maintenance, refreshed live;
// admins put a machine in or out of maintenance. Filters and page are kept in the URL.
"use strict";

(function () {
  const { api, h, clear, formatDate, formatNumber, hasRole, initPage, readQuery, writeQuery, wirePager, showProblem,
    hideProblem, showEmptyRow, showError } = window.Mirante;
  const { poll, relativeTime, DENIED } = window.Vision;

  const PAGE_SIZE = 50;
  const COLUMNS = 7;
  const QUERY = {
    status: { choices: ["online", "busy", "offline"] },
    maintenance: { choices: ["true", "false"] },
    inspection_type: { pattern: /^[a-z][a-z0-9_]{0,63}$/ },
    page: { integer: true, min: 1, max: 1000000, default: 1 },
  };
  const FILTERS = ["status", "maintenance", "inspection_type"];
  const $ = (id) => document.getElementById(id);
  const tbody = $("machines-body");

  let state = readQuery(QUERY);
  let principal = null;
  let pager = null;
  let poller = null;

  function maintenanceCell(machine) {
    if (!hasRole(principal, "admin")) {
      return machine.maintenance ? h("span", { class: "badge maintenance" }, "in maintenance") : h("span", { class: "muted" }, "—");
    }
    return h("button", {
      type: "button",
      class: machine.maintenance ? "maintenance-toggle badge maintenance" : "maintenance-toggle",
      "aria-pressed": machine.maintenance ? "true" : "false",
      title: machine.maintenance ? "Put the machine back in service" : "Keep the machine out of dispatch",
      onclick: (event) => toggleMaintenance(event.currentTarget, machine),
    }, machine.maintenance ? "In maintenance · end" : "Start maintenance");
  }

  function machineRow(machine) {
    const heartbeat = machine.last_heartbeat;
    return h("tr", { class: machine.maintenance ? "in-maintenance" : null, dataset: { machineId: machine.id } },
      h("td", { class: "name" }, h("strong", {}, machine.name), h("div", { class: "mono muted" }, machine.id)),
      h("td", { class: "location" }, [machine.location, machine.line].filter(Boolean).join(" · ") || "—"),
      h("td", { class: "status" }, h("span", { class: `badge status-${machine.status}` }, machine.status)),
      h("td", { class: "load" }, h("span", { class: "load" },
        h("meter", { min: 0, max: machine.max_concurrent_inspections, value: machine.current_inspections }),
        `${formatNumber(machine.current_inspections)}/${formatNumber(machine.max_concurrent_inspections)}`)),
      h("td", { class: "heartbeat" },
        heartbeat ? h("time", { datetime: heartbeat, title: formatDate(heartbeat, { seconds: true }) }, relativeTime(heartbeat))
          : h("span", { class: "muted" }, "never")),
      h("td", { class: "maintenance" }, maintenanceCell(machine)),
      h("td", { class: "available" }, machine.is_available ? "yes" : h("span", { class: "muted" }, "no")),
    );
  }

  async function toggleMaintenance(button, machine) {
    button.disabled = true;
    $("action-error").hidden = true;
    try {
      await api(`/api/v1/machines/${encodeURIComponent(machine.id)}/`, {
        method: "PATCH", body: { maintenance: !machine.maintenance },
      });
    } catch (error) {
      showError($("action-error"), error);
      button.disabled = false;
      return;
    }
    poller.now();
  }

  function query() {
    const params = new URLSearchParams({ page: String(state.page), page_size: String(PAGE_SIZE), sort: "name" });
    for (const key of FILTERS) if (state[key] !== "") params.set(key, String(state[key]));
    return params;
  }

  async function load() {
    try {
      const machines = await api("/api/v1/machines/", { query: query() });
      if (machines.results.length === 0 && state.page > 1 && machines.count > 0) {
        go(pager.lastPage(PAGE_SIZE, machines.count));
        return true;
      }
      hideProblem();
      if (machines.results.length === 0) {
        const filtered = FILTERS.some((key) => state[key] !== "");
        showEmptyRow(tbody, COLUMNS, filtered
          ? { title: "No machine matches these filters", text: "Change or reset the filters to see the others.",
            action: h("button", { type: "button", onclick: reset }, "Reset filters") }
          : { title: "No machine is registered yet",
            text: "An admin registers a machine with POST /api/v1/machines/; it shows here, offline until its first heartbeat." });
      } else {
        clear(tbody).append(...machines.results.map(machineRow));
      }
      pager.show(state.page, PAGE_SIZE, machines.count, machines.results.length, ["machine", "machines"]);
      return true;
    } catch (error) {
      showProblem(error, { retry: () => poller.now() });
      return false;
    }
  }

  function go(page) {
    state.page = Math.max(1, page);
    writeQuery(state, QUERY, "push");
    poller.now();
  }

  function showFilters() {
    for (const key of FILTERS) $(`f-${key}`).value = state[key];
  }

  function applyFilters() {
    for (const key of FILTERS) state[key] = $(`f-${key}`).value.trim();
    state = { ...readQuery(QUERY, `?${new URLSearchParams(state)}`), page: 1 };
    go(1);
  }

  function reset() {
    state = readQuery(QUERY, "");
    showFilters();
    go(1);
  }

  async function main() {
    try {
      principal = await initPage({ role: "operator", denied: DENIED });
    } catch (error) {
      showProblem(error, { retry: () => location.reload() });
      return;
    }
    $("board-view").hidden = false;
    showFilters();
    for (const key of FILTERS) $(`f-${key}`).addEventListener("change", applyFilters);
    $("filters-reset").addEventListener("click", reset);
    pager = wirePager(go);
    window.addEventListener("popstate", () => {
      state = readQuery(QUERY);
      showFilters();
      poller.now();
    });
    poller = poll(load, { interval: 3000, status: $("live-status") });
  }

  main();
})();
