// The live map: a floor plan with its zones and gateways, the people on it moving as the live feed reports
// changes, who is where, and a person's trail over a period. Read as a plain page script over window.Mirante.
"use strict";

(function () {
  const M = window.Mirante;
  const SVG = "http://www.w3.org/2000/svg";
  const PAGE = "page_size=200";
  const state = { floor: null, plan: null, zones: new Map(), gateways: new Map(), feed: null, trail: null };
  const $ = (id) => document.getElementById(id);

  function svg(tag, attributes, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attributes || {})) {
      if (value !== undefined && value !== null) node.setAttribute(key, String(value));
    }
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function layer(name) {
    let group = $("plan").querySelector(`g[data-layer="${name}"]`);
    if (!group) {
      group = svg("g", { "data-layer": name });
      $("plan").append(group);
    }
    return M.clear(group);
  }

  async function list(path, query) {
    const data = await M.api(path, { query: `${query ? `${query}&` : ""}${PAGE}` });
    return data.results;
  }

  function fillSelect(select, items, label, chosen) {
    M.clear(select);
    for (const item of items) select.append(M.h("option", { value: item.id, text: label(item) }));
    if (chosen && items.some((item) => String(item.id) === String(chosen))) select.value = String(chosen);
  }

  function dataUrl(blob) {
    return new Promise((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(reader.result);
      reader.onerror = () => reject(reader.error);
      reader.readAsDataURL(blob);
    });
  }

  // -- the floor ----------------------------------------------------------------------------------------------

  async function loadBuildings() {
    const wanted = M.readQuery({ building: "", floor: "" });
    const buildings = await list("/api/v1/buildings");
    fillSelect($("building"), buildings, (building) => building.name, wanted.building);
    await loadFloors(wanted.floor);
  }

  async function loadFloors(chosen) {
    const building = $("building").value;
    const floors = building ? await list("/api/v1/floors", `building_id=${building}`) : [];
    fillSelect($("floor"), floors, (floor) => floor.name || `Level ${floor.level}`, chosen);
    await loadFloor();
  }

  async function loadFloor() {
    const floor = $("floor").value || null;
    state.floor = floor;
    M.writeQuery({ building: $("building").value, floor: floor || "" });
    const plan = $("plan");
    M.clear(plan);
    state.plan = null;
    if (!floor) return;
    const [plans, zones, gateways] = await Promise.all([
      list("/api/v1/floor-plans", `floor_id=${floor}`),
      list("/api/v1/zones", `floor_id=${floor}`),
      list("/api/v1/devices/gateways", `floor_id=${floor}`),
    ]);
    state.zones = new Map(zones.map((zone) => [zone.id, zone]));
    state.gateways = new Map(gateways.map((gateway) => [gateway.id, gateway]));
    $("no-plan").hidden = plans.length > 0;
    plan.hidden = plans.length === 0;
    if (plans.length) {
      state.plan = plans[0];
      plan.setAttribute("viewBox", `0 0 ${state.plan.width_px} ${state.plan.height_px}`);
      const image = await M.api(`/api/v1/floor-plans/${state.plan.id}/image`, { raw: true, accept: "image/*" });
      const href = await dataUrl(await image.blob());
      layer("image").append(svg("image", { href, x: 0, y: 0, width: state.plan.width_px, height: state.plan.height_px }));
    }
    drawZones();
    drawGateways();
    await Promise.all([loadPeople(), loadTrailPeople()]);
  }

  function drawZones() {
    const group = layer("zones");
    for (const zone of state.zones.values()) {
      if (!zone.polygon) continue;
      const points = zone.polygon.map(([x, y]) => `${x},${y}`).join(" ");
      const shape = svg("polygon", { points, class: zone.restricted ? "zone restricted" : "zone", "data-zone-id": zone.id });
      shape.append(svg("title", {}, `${zone.name}${zone.restricted ? " (restricted)" : ""}`));
      const [x, y] = zone.polygon[0];
      group.append(shape, svg("text", { x: x + 4, y: y + 14, class: "zone-label" }, zone.name));
    }
  }

  function drawGateways() {
    const group = layer("gateways");
    for (const gateway of state.gateways.values()) {
      if (gateway.x_px === null || gateway.y_px === null) continue;
      const offline = gateway.status === "offline";
      const mark = svg("rect", {
        x: gateway.x_px - 6, y: gateway.y_px - 6, width: 12, height: 12,
        class: offline ? "gateway offline" : "gateway", "data-gateway-id": gateway.id, "data-status": gateway.status,
      });
      mark.append(svg("title", {}, `${gateway.name || gateway.mac} · ${gateway.status}`));
      group.append(mark);
    }
  }

  // -- people -------------------------------------------------------------------------------------------------

  async function loadPeople() {
    if (!state.floor) return;
    const positions = await list("/api/v1/positions/current", `floor_id=${state.floor}&status=present`);
    const group = layer("people");
    const body = M.clear($("people-body"));
    const crowd = new Map();
    for (const position of positions) {
      const name = position.person_name || position.tag_mac;
      const zone = position.zone_name || "(no zone)";
      const row = M.h("tr", { class: position.zone_restricted ? "restricted" : null, "data-tag-id": position.tag_id },
        M.h("td", { text: name }), M.h("td", { class: "zone-cell", text: zone }),
        M.h("td", { text: M.formatDate(position.since) }));
      body.append(row);
      if (position.x_px === null || position.y_px === null) continue;
      const key = `${position.x_px},${position.y_px}`;
      const index = crowd.get(key) || 0;
      crowd.set(key, index + 1);
      // People at one gateway sit on a small ring around it, so none hides another.
      const angle = index * 1.2;
      const radius = index ? 18 + 3 * index : 14;
      const cx = position.x_px + radius * Math.cos(angle);
      const cy = position.y_px + radius * Math.sin(angle);
      const dot = svg("circle", {
        cx, cy, r: 8, class: position.zone_restricted ? "person in-restricted" : "person",
        "data-person-id": position.person_id, "data-tag-id": position.tag_id, "data-zone-id": position.zone_id,
      });
      dot.append(svg("title", {}, `${name} · ${zone}`));
      group.append(dot, svg("text", { x: cx + 10, y: cy + 4, class: "person-label" }, name));
    }
    if (!positions.length) M.showEmptyRow(body, 3, { title: "Nobody here", text: "No tag is placed on this floor now." });
    drawTrail();
  }

  // -- the trail ----------------------------------------------------------------------------------------------

  async function loadTrailPeople() {
    const people = await list("/api/v1/people", "active=true");
    fillSelect($("trail-person"), people, (person) => person.full_name, $("trail-person").value);
  }

  function localInput(date) {
    const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
    return shifted.toISOString().slice(0, 16);
  }

  async function showTrail(event) {
    event.preventDefault();
    const person = $("trail-person").value;
    if (!person) return;
    const from = $("trail-from").value ? new Date($("trail-from").value) : new Date(Date.now() - 3600000);
    const to = $("trail-to").value ? new Date($("trail-to").value) : new Date(Date.now() + 60000);
    const query = new URLSearchParams({ person_id: person, from: from.toISOString(), to: to.toISOString() });
    try {
      state.trail = await list("/api/v1/positions/history", query.toString());
    } catch (error) {
      M.showError($("trail-list"), error);
      return;
    }
    drawTrail();
  }

  function drawTrail() {
    const group = layer("trail");
    const items = M.clear($("trail-list"));
    if (!state.trail) return;
    const points = [];
    for (const change of state.trail) {
      const where = change.status === "unknown" ? "unknown" : change.zone_name || "(no zone)";
      items.append(M.h("li", { text: `${M.formatDate(change.at)} · ${where}` }));
      if (String(change.floor_id) === String(state.floor) && change.x_px !== null) points.push(`${change.x_px},${change.y_px}`);
    }
    if (points.length > 1) group.append(svg("polyline", { points: points.join(" "), class: "trail" }));
    if (!state.trail.length) items.append(M.h("li", { class: "muted", text: "No movement in this period." }));
  }

  // -- live ---------------------------------------------------------------------------------------------------

  const refreshPeople = M.debounce(() => loadPeople().catch(() => {}), 150);
  const refreshGateways = M.debounce(async () => {
    if (!state.floor) return;
    const gateways = await list("/api/v1/devices/gateways", `floor_id=${state.floor}`);
    state.gateways = new Map(gateways.map((gateway) => [gateway.id, gateway]));
    drawGateways();
  }, 150);

  function setStatus(text) {
    $("live-status").textContent = text;
  }

  // EventSource cannot send the bearer token: each connection opens with a one-use ticket asked for with it.
  async function connect() {
    if (state.feed) state.feed.close();
    let ticket;
    try {
      ticket = await M.api("/api/v1/positions/feed-tickets", { method: "POST" });
    } catch (error) {
      setStatus("Live feed unavailable; retrying");
      setTimeout(connect, 5000);
      return;
    }
    const feed = new EventSource(ticket.url);
    state.feed = feed;
    feed.onopen = () => {
      setStatus("Live");
      $("map-view").dataset.live = "true";
    };
    feed.onmessage = (message) => {
      const event = JSON.parse(message.data);
      if (event.type.startsWith("rtls.position.") || event.type.startsWith("rtls.person.")) refreshPeople();
      else if (event.type.startsWith("rtls.gateway.") || event.type.startsWith("rtls.device.")) refreshGateways();
    };
    feed.onerror = () => {
      // The ticket is spent: reconnect with a new one rather than let EventSource retry with the old URL.
      feed.close();
      $("map-view").dataset.live = "false";
      setStatus("Reconnecting…");
      setTimeout(connect, 2000);
      refreshPeople();
    };
  }

  async function start() {
    try {
      await M.initPage();
      await loadBuildings();
      M.hideProblem();
    } catch (error) {
      M.showProblem(error, { retry: start });
      return;
    }
    $("trail-from").value = localInput(new Date(Date.now() - 3600000));
    connect();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("building").addEventListener("change", () => loadFloors().catch((error) => M.showProblem(error, { retry: start })));
    $("floor").addEventListener("change", () => loadFloor().catch((error) => M.showProblem(error, { retry: start })));
    $("trail-form").addEventListener("submit", showTrail);
    $("trail-clear").addEventListener("click", () => {
      state.trail = null;
      drawTrail();
    });
    start();
  });
})();
