// The alerts inbox (viewers and up): alerts newest first, open and acknowledged ones by default, refreshed every
// few seconds. Operators acknowledge and resolve them here; the API records who and when, and refuses a change
// someone else already made (409), which the page explains and then shows the alert as it now is.
"use strict";

(function () {
  const { api, h, clear, formatDate, initPage, readQuery, writeQuery, wirePager, showProblem, hideProblem,
    showEmptyRow, showError, hasRole } = window.Mirante;

  const PAGE_SIZE = 50;
  const COLUMNS = 6;
  const REFRESH_MS = 15000;
  const STATUSES = { unresolved: ["open", "acknowledged"], open: ["open"], acknowledged: ["acknowledged"],
    resolved: ["resolved"] };
  const QUERY = {
    status: { choices: Object.keys(STATUSES), default: "unresolved" },
    severity: { choices: ["critical", "high", "medium", "low"] },
    page: { integer: true, min: 1, max: 1000000, default: 1 },
  };
  const KINDS = {
    zone_entry: "Zone entry", zone_absence: "Absence", person_not_seen: "Not seen", gateway_offline: "Gateway offline",
    camera_event: "Camera", suite_event: "Suite event",
  };
  const $ = (id) => document.getElementById(id);
  const tbody = $("alerts-body");

  let state = readQuery(QUERY);
  let pager = null;
  let canAct = false;
  let loading = null;

  function who(step, alert) {
    const actor = alert[`${step}_by`];
    const at = alert[`${step}_at`];
    if (!actor || !at) return null;
    const note = alert[step === "acknowledged" ? "acknowledge_note" : "resolve_note"];
    return h("div", { class: "alert-who muted" },
      `${step === "acknowledged" ? "Acknowledged" : "Resolved"} by ${actor.name}, ${formatDate(at)}`,
      note ? ` — ${note}` : null);
  }

  function actions(alert) {
    if (!canAct || alert.status === "resolved") return h("span", { class: "muted" }, "—");
    return h("div", { class: "alert-actions" },
      alert.status === "open"
        ? h("button", { type: "button", dataset: { action: "acknowledge" }, onclick: () => act(alert, "acknowledge") },
          "Acknowledge")
        : null,
      h("button", { type: "button", class: "primary", dataset: { action: "resolve" }, onclick: () => act(alert, "resolve") },
        "Resolve"));
  }

  function alertRow(alert) {
    return h("tr", { dataset: { alertId: alert.id, status: alert.status, severity: alert.severity } },
      h("td", { class: "raised" }, h("time", { datetime: alert.created_at }, formatDate(alert.created_at, { seconds: true }))),
      h("td", { class: "severity" }, h("span", { class: `badge severity-${alert.severity}` }, alert.severity)),
      h("td", { class: "message wrap" }, alert.message, h("div", { class: "muted" }, KINDS[alert.kind] || alert.kind)),
      h("td", { class: "rule wrap" }, alert.rule_name),
      h("td", { class: "status" }, h("span", { class: "badge" }, alert.status), who("acknowledged", alert),
        who("resolved", alert)),
      h("td", { class: "actions" }, actions(alert)));
  }

  async function act(alert, action) {
    const error = $("action-error");
    error.hidden = true;
    try {
      await api(`/api/v1/alert-events/${encodeURIComponent(alert.id)}/${action}`, { method: "POST", body: {} });
    } catch (failure) {
      showError(error, failure.status === 409
        ? { message: `Alert ${alert.id} changed meanwhile: ${failure.message}` }
        : failure);
    }
    await load();
  }

  function query() {
    const params = new URLSearchParams({ page: String(state.page), page_size: String(PAGE_SIZE) });
    for (const status of STATUSES[state.status]) params.append("status", status);
    if (state.severity) params.set("severity", state.severity);
    return params;
  }

  async function fetchAndShow() {
    try {
      const list = await api("/api/v1/alert-events", { query: query() });
      if (list.results.length === 0 && state.page > 1 && list.count > 0) {
        go(pager.lastPage(PAGE_SIZE, list.count));
        return;
      }
      hideProblem();
      if (list.results.length === 0) {
        showEmptyRow(tbody, COLUMNS, {
          title: state.status === "resolved" ? "No resolved alerts" : "No open alerts",
          text: "Alerts appear here as the alert rules raise them.",
        });
      } else {
        clear(tbody).append(...list.results.map(alertRow));
      }
      pager.show(state.page, PAGE_SIZE, list.count, list.results.length, ["alert", "alerts"]);
      $("refresh-status").textContent = `Updated ${formatDate(new Date().toISOString(), { seconds: true })}`;
      $("alerts-view").dataset.loaded = "true";
    } catch (error) {
      showProblem(error, { retry: load });
    }
  }

  // One load at a time: a refresh asked for during a load runs after it, so the table never shows an older answer.
  async function load() {
    while (loading) await loading;
    loading = fetchAndShow();
    try {
      await loading;
    } finally {
      loading = null;
    }
  }

  function go(page) {
    state.page = Math.max(1, page);
    writeQuery(state, QUERY, "push");
    load();
  }

  function wireFilters() {
    wireValues();
    for (const id of ["status", "severity"]) {
      $(id).addEventListener("change", () => {
        state = { ...state, [id]: $(id).value, page: 1 };
        writeQuery(state, QUERY, "push");
        load();
      });
    }
    $("refresh").addEventListener("click", load);
    window.addEventListener("popstate", () => {
      state = readQuery(QUERY);
      wireValues();
      load();
    });
  }

  function wireValues() {
    $("status").value = state.status;
    $("severity").value = state.severity;
  }

  async function main() {
    let principal;
    try {
      principal = await initPage();
    } catch (error) {
      showProblem(error, { retry: () => location.reload() });
      return;
    }
    canAct = hasRole(principal, "operator");
    $("alerts-view").hidden = false;
    pager = wirePager(go);
    wireFilters();
    await load();
    setInterval(() => {
      if (!document.hidden) load();
    }, REFRESH_MS);
  }

  main();
})();
