// The dashboard: who is on site by building and floor, gateways and cameras by status, open incidents by
// severity (each a link to the board, filtered). Refreshed every REFRESH_MS while the tab is visible.
"use strict";

(function () {
  const { api, h, clear, formatDate, formatNumber, initPage, showProblem, hideProblem, showEmptyRow } = window.Mirante;
  const { SEVERITIES } = window.Rtls;
  const REFRESH_MS = 15000;
  const $ = (id) => document.getElementById(id);

  function card(key, label, value, sub, href) {
    const children = [
      h("span", { class: "card-label" }, label),
      h("span", { class: "card-value" }, value),
      sub ? h("span", { class: "card-sub" }, sub) : null,
    ];
    const props = { class: href ? "card card-link" : "card", dataset: { card: key } };
    return href ? h("a", { ...props, href }, ...children) : h("div", props, ...children);
  }

  function devices(key, label, counts) {
    const sub = `${formatNumber(counts.offline)} offline · ${formatNumber(counts.unknown)} never heard`;
    return card(key, label, `${formatNumber(counts.online)} / ${formatNumber(counts.total)} online`, sub);
  }

  function showPeople(people) {
    $("fresh-note").textContent = `· heard within the last ${formatNumber(people.fresh_seconds)} s`;
    const body = clear($("people-body"));
    for (const building of people.buildings) {
      const name = building.building_name || "Not placed in a building";
      body.append(h("tr", { class: "building-row", dataset: { buildingId: building.building_id ?? "" } },
        h("th", { scope: "row" }, name), h("td", { class: "muted" }, "all floors"),
        h("td", { class: "num" }, formatNumber(building.people))));
      for (const floor of building.floors) {
        const floorName = floor.floor_name || (floor.floor_level === null ? "No floor" : `Level ${floor.floor_level}`);
        body.append(h("tr", { class: "floor-row", dataset: { floorId: floor.floor_id ?? "" } },
          h("td", {}, ""), h("td", {}, floorName), h("td", { class: "num" }, formatNumber(floor.people))));
      }
    }
    if (!people.buildings.length) {
      showEmptyRow(body, 3, { title: "Nobody on site", text: "No tag carried by a person has been heard recently." });
    }
  }

  function render(summary) {
    $("generated-at").textContent = `as of ${formatDate(summary.generated_at, { seconds: true })}`;
    clear($("site-cards")).append(
      card("people", "People on site", formatNumber(summary.people_on_site.total)),
      devices("gateways", "Gateways", summary.gateways),
      devices("cameras", "Cameras", summary.cameras),
      card("alerts", "Unresolved alerts", formatNumber(summary.alerts.total), null, "/alerts"),
    );
    clear($("alert-cards")).append(...SEVERITIES.map((severity) =>
      card(`alert-severity-${severity}`, severity, formatNumber(summary.alerts.by_severity[severity]), null,
        `/alerts?severity=${severity}`)));
    showPeople(summary.people_on_site);
    // Incidents span the whole suite: a caller bound to a tenant gets none (null).
    const incidents = summary.incidents;
    $("incidents-part").hidden = !incidents;
    if (!incidents) return;
    $("site-cards").append(card("incidents", "Open incidents", formatNumber(incidents.total),
      `${formatNumber(incidents.by_status.open)} not yet acknowledged`, "/incidents"));
    clear($("incident-cards")).append(...SEVERITIES.map((severity) =>
      card(`severity-${severity}`, severity, formatNumber(incidents.by_severity[severity]), null,
        `/incidents?severity=${severity}`)));
  }

  async function load() {
    try {
      render(await api("/api/v1/dashboard/summary"));
      hideProblem();
    } catch (error) {
      showProblem(error, { retry: load });
    }
  }

  async function start() {
    try {
      await initPage();
    } catch (error) {
      showProblem(error, { retry: start });
      return;
    }
    await load();
    setInterval(() => {
      if (document.visibilityState === "visible") load();
    }, REFRESH_MS);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("refresh").addEventListener("click", load);
    start();
  });
})();
