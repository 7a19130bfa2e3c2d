// The incident board: a column per status with the incidents matching the filters (kept in the URL), each card
// linking to its page; operators move a card to its next status and open new incidents from here.
"use strict";

(function () {
  const M = window.Mirante;
  const { h, clear, api, formatDate, formatNumber, plural } = M;
  const { SEVERITIES, STATUSES, STATUS_LABELS, TRANSITIONS, actionLabel, severityBadge } = window.Rtls;
  const PER_COLUMN = 50;
  const FIELDS = {
    q: { maxLength: 200 },
    severity: { choices: SEVERITIES },
    support_group_id: { pattern: /^[1-9][0-9]{0,18}$/ },
    assignee: { choices: ["me"] },
  };
  const state = { principal: null, filters: {} };
  const $ = (id) => document.getElementById(id);

  function option(value, text) {
    return h("option", { value }, text);
  }

  function fillFilters(groups) {
    clear($("f-severity")).append(option("", "Any"), ...SEVERITIES.map((severity) => option(severity, severity)));
    clear($("f-group")).append(option("", "Any"), ...groups.map((group) => option(String(group.id), group.name)));
    clear($("f-assignee")).append(option("", "Anyone"), option("me", "Me"));
    clear($("new-severity")).append(...SEVERITIES.map((severity) => option(severity, severity)));
    $("new-severity").value = "medium";
    const wanted = state.filters;
    $("f-q").value = wanted.q;
    $("f-severity").value = wanted.severity;
    $("f-group").value = groups.some((group) => String(group.id) === wanted.support_group_id) ? wanted.support_group_id : "";
    $("f-assignee").value = wanted.assignee;
  }

  function query(status) {
    const params = new URLSearchParams({ status, page_size: String(PER_COLUMN) });
    const { q, severity, support_group_id: group, assignee } = state.filters;
    if (q) params.set("q", q);
    if (severity) params.set("severity", severity);
    if (group) params.set("support_group_id", group);
    if (assignee === "me" && state.principal.kind === "user") params.set("assignee_id", String(state.principal.id));
    return params;
  }

  async function move(incident, target, button) {
    button.disabled = true;
    $("action-error").hidden = true;
    try {
      await api(`/api/v1/incidents/${incident.id}/status`, { method: "POST", body: { status: target } });
      await loadBoard();
    } catch (error) {
      M.showError($("action-error"), error);
      button.disabled = false;
    }
  }

  function incidentCard(incident) {
    const canWork = M.hasRole(state.principal, "operator");
    const next = TRANSITIONS[incident.status][0];
    const button = canWork && next
      ? h("button", { type: "button", dataset: { action: next } }, actionLabel(incident.status, next))
      : null;
    if (button) button.addEventListener("click", () => move(incident, next, button));
    return h("li", { class: "incident-card", dataset: { incidentId: incident.id, severity: incident.severity } },
      h("a", { class: "title", href: `/incidents/${incident.id}` }, incident.title),
      h("span", { class: "meta" }, severityBadge(incident.severity), h("span", { class: "muted" }, `#${incident.id}`),
        h("span", { class: "muted" }, formatDate(incident.created_at))),
      button);
  }

  function column(status, page) {
    const cards = h("ul", { class: "board-cards" }, ...page.results.map(incidentCard));
    const more = page.count > page.results.length
      ? h("p", { class: "board-more muted" }, `${formatNumber(page.count - page.results.length)} more: narrow the filters`)
      : null;
    return h("section", { class: "board-column", dataset: { status }, "aria-label": STATUS_LABELS[status] },
      h("h2", {}, STATUS_LABELS[status], h("span", { class: "pill", dataset: { count: page.count } }, formatNumber(page.count))),
      cards, more);
  }

  async function loadBoard() {
    const pages = await Promise.all(STATUSES.map((status) => api("/api/v1/incidents", { query: query(status) })));
    clear($("board")).append(...STATUSES.map((status, index) => column(status, pages[index])));
    const unresolved = pages.slice(0, 3).reduce((total, page) => total + page.count, 0);
    $("board-summary").textContent = `${plural(unresolved, "unresolved incident")} match`;
  }

  async function reload() {
    try {
      await loadBoard();
      M.hideProblem();
    } catch (error) {
      M.showProblem(error, { retry: reload });
    }
  }

  function readFilters() {
    state.filters = {
      q: $("f-q").value.trim(),
      severity: $("f-severity").value,
      support_group_id: $("f-group").value,
      assignee: $("f-assignee").value,
    };
    M.writeQuery(state.filters, FIELDS);
    reload();
  }

  async function openIncident(event) {
    event.preventDefault();
    $("new-error").hidden = true;
    const body = { title: $("new-title").value, severity: $("new-severity").value };
    if ($("new-description").value.trim()) body.description = $("new-description").value;
    $("new-submit").disabled = true;
    try {
      await api("/api/v1/incidents", { method: "POST", body });
      $("new-incident").reset();
      $("new-severity").value = "medium";
      await loadBoard();
    } catch (error) {
      M.showError($("new-error"), error);
    } finally {
      $("new-submit").disabled = false;
    }
  }

  async function start() {
    try {
      state.principal = await M.initPage();
      state.filters = M.readQuery(FIELDS);
      const groups = await api("/api/v1/support-groups", { query: "page_size=200" });
      fillFilters(groups.results);
      await loadBoard();
      M.hideProblem();
    } catch (error) {
      M.showProblem(error, { retry: start });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("filters").addEventListener("submit", (event) => event.preventDefault());
    $("f-q").addEventListener("input", M.debounce(readFilters, 300));
    for (const id of ["f-severity", "f-group", "f-assignee"]) $(id).addEventListener("change", readFilters);
    $("new-incident").addEventListener("submit", openIncident);
    start();
  });
})();
