// One inspection (operators): its fields, its pipeline drawn as a graph (tools as boxes in columns by
// topological level, connections as arrows), its status history and results; refreshed live until it finishes.
"use strict";

(function () {
  const { api, h, clear, formatDate, formatNumber, initPage, showProblem, hideProblem, emptyState, showEmptyRow,
    plural } = window.Mirante;
  const { poll, duration, DENIED } = window.Vision;

  const SVG = "http://www.w3.org/2000/svg";
  const TERMINAL = new Set(["completed", "failed", "cancelled"]);
  const NODE = { width: 170, height: 48, gapX: 64, gapY: 22, pad: 14, maxChars: 20 };
  const $ = (id) => document.getElementById(id);
  const inspectionId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");

  let poller = null;

  // An SVG element; attributes only (no style attribute: the page's CSP forbids inline styles).
  function s(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== undefined && value !== null) node.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function shorten(text) {
    return text.length > NODE.maxChars ? `${text.slice(0, NODE.maxChars - 1)}…` : text;
  }

  // Each tool's column: 0 for a tool nothing feeds, else one more than the deepest tool feeding it (Kahn's order).
  // The API refuses cycles; a tool left over by one anyway stays in column 0.
  function levels(names, edges) {
    const level = new Map(names.map((name) => [name, 0]));
    const incoming = new Map(names.map((name) => [name, 0]));
    const next = new Map(names.map((name) => [name, []]));
    for (const edge of edges) {
      next.get(edge.from).push(edge.to);
      incoming.set(edge.to, incoming.get(edge.to) + 1);
    }
    const ready = names.filter((name) => incoming.get(name) === 0);
    while (ready.length) {
      const name = ready.shift();
      for (const target of next.get(name)) {
        level.set(target, Math.max(level.get(target), level.get(name) + 1));
        incoming.set(target, incoming.get(target) - 1);
        if (incoming.get(target) === 0) ready.push(target);
      }
    }
    return level;
  }

  function pipelineGraph(config) {
    const tools = Array.isArray(config && config.tools) ? config.tools : [];
    const names = tools.map((tool) => String(tool.name));
    const known = new Set(names);
    const edges = (Array.isArray(config && config.connections) ? config.connections : [])
      .map((connection) => ({ from: String(connection.from), to: String(connection.to) }))
      .filter((edge) => known.has(edge.from) && known.has(edge.to));
    const level = levels(names, edges);
    const columns = [];
    for (const name of names) (columns[level.get(name)] ||= []).push(name);
    const position = new Map();
    columns.forEach((column, x) => column.forEach((name, y) => position.set(name, {
      x: NODE.pad + x * (NODE.width + NODE.gapX), y: NODE.pad + y * (NODE.height + NODE.gapY),
    })));
    const rows = Math.max(1, ...columns.map((column) => column.length));
    const width = NODE.pad * 2 + columns.length * NODE.width + Math.max(0, columns.length - 1) * NODE.gapX;
    const height = NODE.pad * 2 + rows * NODE.height + (rows - 1) * NODE.gapY;
    const svg = s("svg", {
      id: "pipeline-graph", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": `Pipeline: ${plural(tools.length, "tool")}, ${plural(edges.length, "connection")}`,
    });
    svg.append(s("defs", {}, s("marker", {
      id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: "auto-start-reverse",
    }, s("path", { class: "arrow-head", d: "M 0 0 L 10 5 L 0 10 z" }))));
    for (const edge of edges) {
      const from = position.get(edge.from);
      const to = position.get(edge.to);
      const x1 = from.x + NODE.width;
      const y1 = from.y + NODE.height / 2;
      const x2 = to.x;
      const y2 = to.y + NODE.height / 2;
      const bend = (x2 - x1) / 2;
      svg.append(s("path", {
        class: "edge", "data-from": edge.from, "data-to": edge.to, "marker-end": "url(#arrow)",
        d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`,
      }, s("title", {}, `${edge.from} → ${edge.to}`)));
    }
    tools.forEach((tool, index) => {
      const name = names[index];
      const { x, y } = position.get(name);
      const type = tool.type && tool.type !== name ? String(tool.type) : null;
      svg.append(s("g", { class: "node", "data-tool": name, "data-level": level.get(name), transform: `translate(${x} ${y})` },
        s("title", {}, type ? `${name} (${type})` : name),
        s("rect", { width: NODE.width, height: NODE.height, rx: 6 }),
        s("text", { class: "tool-name", x: 10, y: type ? 20 : 29 }, shorten(name)),
        type ? s("text", { class: "tool-type", x: 10, y: 37 }, shorten(type)) : null));
    });
    $("pipeline-count").textContent = `· ${plural(tools.length, "tool")}, ${plural(edges.length, "connection")}`;
    clear($("pipeline")).append(tools.length ? svg : emptyState({ title: "The pipeline has no tools" }));
  }

  function field(label, value) {
    const shown = value === null || value === undefined || value === "" ? h("span", { class: "muted" }, "—") : value;
    return [h("dt", {}, label), h("dd", { dataset: { field: label } }, shown)];
  }

  function when(value) {
    return value ? h("time", { datetime: value, title: value }, formatDate(value, { seconds: true })) : null;
  }

  function machineLink(machineId) {
    return machineId ? h("span", { class: "mono" }, machineId) : null;
  }

  function showFields(inspection) {
    $("inspection-title").textContent = inspection.name;
    document.title = `${inspection.name} · Vision orchestrator`;
    const badge = $("inspection-status");
    badge.className = `badge status-${inspection.status}`;
    badge.textContent = inspection.status;
    clear($("inspection-fields")).append(
      ...field("Id", h("span", { class: "mono" }, inspection.id)),
      ...field("Type", inspection.inspection_type),
      ...field("Priority", formatNumber(inspection.priority)),
      ...field("Description", inspection.description),
      ...field("Target machine", machineLink(inspection.target_machine_id)),
      ...field("Assigned machine", machineLink(inspection.assigned_machine_id)),
      ...field("Created", when(inspection.created_at)),
      ...field("Created by", inspection.created_by),
      ...field("Queued", when(inspection.queued_at)),
      ...field("Assigned", when(inspection.assigned_at)),
      ...field("Started", when(inspection.started_at)),
      ...field("Finished", when(inspection.finished_at)),
      ...field("Dispatch attempts", formatNumber(inspection.dispatch_attempts)),
      ...field("Last dispatch error", inspection.last_dispatch_error),
      ...field("Error", inspection.error_message),
    );
  }

  function showHistory(history) {
    $("history-count").textContent = `· ${plural(history.length, "change")}`;
    const body = $("history-body");
    if (history.length === 0) {
      showEmptyRow(body, 5, { title: "No status change recorded" });
      return;
    }
    clear(body).append(...history.map((change) => h("tr", { class: "history-row" },
      h("td", {}, when(change.changed_at)),
      h("td", { class: "change" },
        change.from_status ? h("span", { class: `badge status-${change.from_status}` }, change.from_status) : "created",
        " → ", h("span", { class: `badge status-${change.to_status}` }, change.to_status)),
      h("td", { class: "mono" }, change.machine_id || "—"),
      h("td", {}, change.actor),
      h("td", { class: "wrap" }, change.reason || ""))));
  }

  function showResults(inspection) {
    const target = clear($("results"));
    if (inspection.results.length === 0) {
      target.append(emptyState({
        title: "No results yet",
        text: TERMINAL.has(inspection.status) ? "The inspection finished without a reported result."
          : "Results show here once the machine reports them.",
      }));
      return;
    }
    target.append(...inspection.results.map((result) => h("article", { class: "result" },
      h("p", {},
        h("span", { class: `badge status-${result.status}` }, result.status), " from ",
        h("span", { class: "mono" }, result.machine_id), " · ", formatDate(result.received_at, { seconds: true }),
        " · processing ", duration(result.processing_time_seconds)),
      result.error_message ? h("p", { class: "error" }, result.error_message) : null,
      h("pre", { class: "result-json" }, JSON.stringify(result.results, null, 2)))));
  }

  async function load() {
    try {
      const inspection = await api(`/api/v1/inspections/${encodeURIComponent(inspectionId)}/`);
      hideProblem();
      showFields(inspection);
      pipelineGraph(inspection.pipeline_config);
      showHistory(inspection.history);
      showResults(inspection);
      if (TERMINAL.has(inspection.status) && poller) poller.stop();
      return true;
    } catch (error) {
      showProblem(error, { retry: () => poller.now() });
      return false;
    }
  }

  async function main() {
    try {
      await initPage({ role: "operator", denied: DENIED });
    } catch (error) {
      showProblem(error, { retry: () => location.reload() });
      return;
    }
    $("inspection-view").hidden = false;
    poller = poll(load, { interval: 3000, status: $("live-status") });
  }

  main();
})();
