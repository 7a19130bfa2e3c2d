// One sensor of one device: its latest raw readings (newest first), their statistics, a time-series chart drawn
// here as SVG, the device's and sensor's metadata, and the CSV export of the readings.
//
// Without `from`/`to` the window is the 24 hours up to the sensor's newest reading, so a sensor that went quiet
// still shows its last readings; with them, exactly that range.
"use strict";

(function () {
  const { api, h, clear, formatNumber, showError, downloadCsv, wirePager, showProblem, hideProblem, showEmptyRow } =
    window.Mirante;
  const Ops = window.Ops;

  const $ = (id) => document.getElementById(id);
  const pageError = $("page-error");
  const exportButton = $("export-csv");
  const table = $("readings-table");
  const tbody = $("readings-body");
  const RAW_LIMIT = 1000;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const CHART = { width: 960, height: 300, left: 72, right: 20, top: 14, bottom: 40 };
  const Y_TICKS = 5;

  let filters = Ops.readFilters(RAW_LIMIT);
  let resolved = null;
  let controller = null;
  let pager = null;

  function path() {
    return Ops.tenantPath(filters.tenant_slug);
  }

  function series() {
    return { device_id: filters.device_id, sensor_id: filters.sensor_id };
  }

  // -- the window --------------------------------------------------------------------------------------------

  // `{from, to, latest}`: the range to read. Without one in the URL, it ends just after the newest reading.
  async function readingWindow(signal) {
    if (filters.from || filters.to) return { from: filters.from, to: filters.to, latest: false };
    const query = Ops.apiQuery(series(), { limit: 1 });
    const data = await api(`${path()}/telemetry/latest`, { query, signal });
    const newest = data.results[0];
    if (!newest) return { from: "", to: "", latest: true };
    const end = new Date((Math.floor(Date.parse(newest.ts) / 1000) + 1) * 1000);
    return { from: "", to: end.toISOString(), latest: true };
  }

  // -- statistics --------------------------------------------------------------------------------------------

  function card(stat, label, value, sub) {
    return h("div", { class: "card", dataset: { stat } },
      h("span", { class: "card-label" }, label),
      h("span", { class: "card-value" }, value),
      sub ? h("span", { class: "card-sub" }, sub) : null);
  }

  function showStats(stats) {
    clear($("stats")).append(
      card("count", "Readings", formatNumber(stats.count)),
      card("avg", "Average", Ops.formatValue(stats.avg)),
      card("min", "Minimum", Ops.formatValue(stats.min)),
      card("max", "Maximum", Ops.formatValue(stats.max)),
      card("first", "First", Ops.formatValue(stats.first_value), stats.first_ts ? Ops.utcTime(stats.first_ts) : null),
      card("last", "Last", Ops.formatValue(stats.last_value), stats.last_ts ? Ops.utcTime(stats.last_ts) : null),
    );
  }

  // -- the chart ---------------------------------------------------------------------------------------------

  function svg(tag, attributes, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attributes || {})) {
      if (value !== undefined && value !== null) node.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child !== undefined && child !== null) node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function round(number) {
    return Math.round(number * 100) / 100;
  }

  // Readings of the page in time order, one point each, joined by a line; axes show the value and time ranges.
  function drawChart(readings) {
    const box = clear($("chart-box"));
    const points = readings
      .map((reading) => ({ t: Date.parse(reading.ts), v: reading.value, ts: reading.ts }))
      .filter((point) => Number.isFinite(point.t) && Number.isFinite(point.v))
      .sort((a, b) => a.t - b.t);
    $("chart-caption").textContent = points.length ? `(${formatNumber(points.length)} readings)` : "";
    if (points.length === 0) {
      box.append(h("p", { class: "notice" }, "No readings to draw."));
      return;
    }
    const { width, height, left, right, top, bottom } = CHART;
    const plotWidth = width - left - right;
    const plotHeight = height - top - bottom;
    const tMin = points[0].t;
    const tMax = points[points.length - 1].t;
    let vMin = Math.min(...points.map((point) => point.v));
    let vMax = Math.max(...points.map((point) => point.v));
    if (vMin === vMax) {
      const pad = Math.abs(vMin) > 0 ? Math.abs(vMin) * 0.05 : 1;
      vMin -= pad;
      vMax += pad;
    }
    const x = (t) => round(tMax === tMin ? left + plotWidth / 2 : left + ((t - tMin) / (tMax - tMin)) * plotWidth);
    const y = (v) => round(top + plotHeight - ((v - vMin) / (vMax - vMin)) * plotHeight);

    const chart = svg("svg", {
      id: "chart", class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": `${filters.sensor_id} of ${filters.device_id}: ${points.length} readings`,
    });
    // Tick labels carry one decimal more than the step between them needs, and no more.
    const step = (vMax - vMin) / (Y_TICKS - 1);
    const decimals = Math.min(6, Math.max(0, Math.ceil(-Math.log10(step)) + 1));
    const tickFormat = new Intl.NumberFormat("en-US", { maximumFractionDigits: decimals, useGrouping: false });
    const grid = svg("g", { class: "grid" });
    for (let index = 0; index < Y_TICKS; index += 1) {
      const value = vMin + ((vMax - vMin) * index) / (Y_TICKS - 1);
      const at = y(value);
      grid.append(
        svg("line", { x1: left, x2: width - right, y1: at, y2: at }),
        svg("text", { x: left - 8, y: at, class: "y-label", "text-anchor": "end", "dominant-baseline": "middle" },
          tickFormat.format(value)),
      );
    }
    const times = tMax === tMin ? [tMin] : [tMin, (tMin + tMax) / 2, tMax];
    times.forEach((t, index) => {
      const anchor = times.length === 1 ? "middle" : ["start", "middle", "end"][index];
      grid.append(svg("text", { x: x(t), y: height - 12, class: "x-label", "text-anchor": anchor },
        Ops.formatUtc(new Date(t).toISOString())));
    });
    chart.append(
      grid,
      svg("line", { class: "axis", x1: left, x2: left, y1: top, y2: top + plotHeight }),
      svg("line", { class: "axis", x1: left, x2: width - right, y1: top + plotHeight, y2: top + plotHeight }),
      svg("polyline", { class: "series-line", points: points.map((point) => `${x(point.t)},${y(point.v)}`).join(" ") }),
    );
    const dots = svg("g", { class: "points" });
    for (const point of points) {
      dots.append(svg("circle", { class: "point", cx: x(point.t), cy: y(point.v), r: 2.5, "data-ts": point.ts, "data-value": point.v },
        svg("title", {}, `${Ops.formatUtc(point.ts, { millis: true })} UTC: ${Ops.formatValue(point.v)}`)));
    }
    chart.append(dots);
    box.append(chart);
  }

  // -- readings and metadata ---------------------------------------------------------------------------------

  function readingRow(reading) {
    return h("tr", { dataset: { ts: reading.ts } },
      h("td", { class: "ts" }, Ops.utcTime(reading.ts, { millis: true })),
      h("td", { class: "device mono" }, reading.device_id),
      h("td", { class: "sensor mono" }, reading.sensor),
      h("td", { class: "num value", dataset: { value: String(reading.value) } }, Ops.formatValue(reading.value)),
      h("td", { class: "unit" }, reading.unit ?? "—"),
      h("td", { class: "received" }, Ops.utcTime(reading.received_at, { millis: true })),
    );
  }

  function showReadings(data) {
    clear(tbody);
    if (data.results.length === 0) {
      showEmptyRow(tbody, 6, {
        title: "No readings in this window.",
        text: "The sensor sent nothing in this time range; go back to the aggregates and pick a wider one.",
      });
    } else {
      tbody.append(...data.results.map(readingRow));
    }
    $("readings-caption").textContent = `(${formatNumber(data.results.length)} of ${formatNumber(data.count)})`;
    pager.show(filters.page, filters.limit, data.count, data.results.length, "readings");
  }

  function labelsText(labels) {
    return labels && Object.keys(labels).length ? JSON.stringify(labels) : "—";
  }

  async function loadMetadata(signal) {
    let device;
    try {
      device = await api(`${path()}/devices/${encodeURIComponent(filters.device_id)}`, { signal });
    } catch (error) {
      // A device known only from its readings has no metadata to show.
      return;
    }
    const sensor = (device.sensors || []).find((item) => item.sensor === filters.sensor_id);
    const items = [
      ["Device name", device.name || "—", "device-name"],
      ["Site", device.site || "—", "site"],
      ["Asset", device.asset || "—", "asset"],
      ["Device labels", labelsText(device.labels), "device-labels"],
    ];
    if (sensor) {
      items.push(
        ["Sensor name", sensor.name || "—", "sensor-name"],
        ["Unit", sensor.unit || "—", "sensor-unit"],
        ["Sensor labels", labelsText(sensor.labels), "sensor-labels"],
      );
    }
    Ops.showFields($("metadata"), items);
    $("metadata-panel").hidden = false;
  }

  function showWindow(range, span, name) {
    const how = span.latest
      ? h("span", { class: "muted" }, " (24 hours up to the newest reading)")
      : "";
    Ops.showFields($("window-summary"), [
      ["Tenant", name ? `${name} (${filters.tenant_slug})` : filters.tenant_slug, "tenant"],
      ["Window (UTC)", [Ops.utcTime(range.from), " – ", Ops.utcTime(range.to), how], "window"],
      ["Readings per page", formatNumber(filters.limit), "limit"],
    ]);
  }

  // -- loading -----------------------------------------------------------------------------------------------

  async function load() {
    if (controller) controller.abort();
    const current = new AbortController();
    controller = current;
    const { signal } = current;
    table.setAttribute("aria-busy", "true");
    exportButton.disabled = true;
    try {
      const span = await readingWindow(signal);
      const range = Ops.apiQuery({ ...series(), from: span.from, to: span.to });
      const readingsQuery = new URLSearchParams(range);
      readingsQuery.set("limit", String(filters.limit));
      readingsQuery.set("page", String(filters.page));
      const [stats, data, name] = await Promise.all([
        api(`${path()}/telemetry/stats`, { query: range, signal }),
        api(`${path()}/telemetry/readings`, { query: readingsQuery, signal }),
        Ops.tenantName(filters.tenant_slug),
        loadMetadata(signal),
      ]);
      if (data.results.length === 0 && filters.page > 1 && data.count > 0) {
        goToPage(pager.lastPage(filters.limit, data.count));
        return;
      }
      resolved = data.query;
      pageError.hidden = true;
      hideProblem();
      showWindow(data.query, span, name);
      showStats(stats);
      drawChart(data.results);
      showReadings(data);
      exportButton.disabled = false;
    } catch (error) {
      if (signal.aborted) return;
      showProblem(error, { retry: load });
    } finally {
      if (!signal.aborted) table.removeAttribute("aria-busy");
    }
  }

  function goToPage(page) {
    if (resolved && !filters.from && !filters.to) {
      filters.from = resolved.from;
      filters.to = resolved.to;
    }
    filters.page = Math.max(1, page);
    history.pushState(null, "", Ops.panelLink(location.pathname, {
      ...filters,
      limit: filters.limit === RAW_LIMIT ? "" : filters.limit,
      page: filters.page > 1 ? filters.page : "",
    }));
    load();
    window.scrollTo(0, 0);
  }

  // -- CSV export --------------------------------------------------------------------------------------------

  // A POST like the aggregates export, and for the same reason free of CSRF exposure: the request carries only
  // the bearer token this page sets in its Authorization header; the API reads no cookie or ambient credential.
  async function exportCsv() {
    if (!resolved) return;
    $("export-error").hidden = true;
    exportButton.disabled = true;
    exportButton.textContent = "Exporting…";
    const body = {
      kind: "raw", device: filters.device_id, sensor: filters.sensor_id, from: resolved.from, to: resolved.to,
    };
    try {
      await downloadCsv(`${path()}/telemetry/export.csv`, {
        method: "POST",
        body,
        filename: `telemetry-${filters.tenant_slug}-${filters.device_id}-${filters.sensor_id}.csv`,
      });
    } catch (error) {
      showError($("export-error"), error);
    } finally {
      exportButton.disabled = false;
      exportButton.textContent = "Export readings CSV";
    }
  }

  // -- start -------------------------------------------------------------------------------------------------

  function links() {
    const list = Ops.panelLink("/ops/telemetry", {
      tenant_slug: filters.tenant_slug, device_id: filters.device_id, sensor_id: filters.sensor_id,
      from: filters.from, to: filters.to,
    });
    $("back-to-list").href = list;
    $("nav-telemetry").href = list;
    $("nav-query").href = Ops.panelLink("/ops/", {
      tenant_slug: filters.tenant_slug, device_id: filters.device_id, sensor_id: filters.sensor_id,
    });
  }

  async function main() {
    if (!(await Ops.staffOnly())) return;
    Ops.showIgnored($("url-notice"), Ops.ignoredParams(RAW_LIMIT));
    if (!filters.tenant_slug || !filters.device_id || !filters.sensor_id) {
      clear(tbody).append(h("tr", {}, h("td", { class: "empty", colspan: 6 },
        "A drill-down needs a tenant, a device and a sensor: ", h("a", { href: "/ops/" }, "start a query"),
        " and follow a row's link.")));
      table.removeAttribute("aria-busy");
      return;
    }
    $("series-title").textContent = `${filters.device_id} · ${filters.sensor_id}`;
    links();
    pager = wirePager(goToPage);
    exportButton.addEventListener("click", exportCsv);
    window.addEventListener("popstate", () => {
      filters = Ops.readFilters(RAW_LIMIT);
      links();
      load();
    });
    await load();
  }

  main();
})();
