// A tenant's aggregated telemetry: one row per (bucket, device, sensor), newest bucket first, page by page, with
// a drill-down link per row and the CSV export of the whole query.
"use strict";

(function () {
  const { api, h, clear, formatNumber, showError, downloadCsv, wirePager, showProblem, hideProblem, showEmptyRow } =
    window.Mirante;
  const Ops = window.Ops;

  const $ = (id) => document.getElementById(id);
  const table = $("aggregates-table");
  const tbody = $("aggregates-body");
  const pageError = $("page-error");
  const exportButton = $("export-csv");
  const COLUMNS = 9;

  let filters = Ops.readFilters();
  let resolved = null;
  let controller = null;
  let pager = null;

  function aggregatesPath() {
    return `${Ops.tenantPath(filters.tenant_slug)}/telemetry/aggregates`;
  }

  function currentLink(extra = {}) {
    return Ops.panelLink(location.pathname, { ...filters, ...extra });
  }

  // -- rows --------------------------------------------------------------------------------------------------

  function drilldownLink(row) {
    return Ops.panelLink("/ops/telemetry/drilldown", {
      tenant_slug: filters.tenant_slug,
      device_id: row.device_id,
      sensor_id: row.sensor,
      from: filters.from,
      to: filters.to,
    });
  }

  function valueCell(key, value) {
    return h("td", { class: `num ${key}`, dataset: { value: value === null ? "" : String(value) } }, Ops.formatValue(value));
  }

  function bucketRow(row) {
    return h("tr", { dataset: { device: row.device_id, sensor: row.sensor, bucket: row.bucket } },
      h("td", { class: "bucket" }, Ops.utcTime(row.bucket)),
      h("td", { class: "device mono" }, row.device_id),
      h("td", { class: "sensor mono" }, row.sensor),
      valueCell("avg", row.avg),
      valueCell("min", row.min),
      valueCell("max", row.max),
      valueCell("last", row.last),
      h("td", { class: "num count" }, formatNumber(row.count)),
      h("td", { class: "actions" },
        h("a", { class: "drilldown", href: drilldownLink(row), title: "Readings, statistics and chart of this sensor" },
          "Drill-down ›")),
    );
  }

  function showRows(rows) {
    clear(tbody);
    if (rows.length === 0) {
      showEmptyRow(tbody, COLUMNS, {
        title: "No readings match this query.",
        text: "Widen the time range (the default is the last 24 hours) or the device and sensor filters.",
        action: h("a", { class: "button", href: $("edit-filters").href }, "Change filters"),
      });
      return;
    }
    tbody.append(...rows.map(bucketRow));
  }

  function showSummary(query, tenantName) {
    Ops.showFields($("query-summary"), [
      ["Tenant", tenantName ? `${tenantName} (${filters.tenant_slug})` : filters.tenant_slug, "tenant"],
      ["Device", query.device || "any", "device"],
      ["Sensor", query.sensor || "any", "sensor"],
      ["Range (UTC)", [Ops.utcTime(query.from), " – ", Ops.utcTime(query.to),
        filters.from || filters.to ? "" : h("span", { class: "muted" }, " (the last 24 hours)")], "range"],
      ["Bucket", Ops.bucketLabel(query.bucket), "bucket"],
    ]);
  }

  // -- loading -----------------------------------------------------------------------------------------------

  async function load() {
    if (controller) controller.abort();
    const current = new AbortController();
    controller = current;
    const query = Ops.apiQuery(filters, { bucket: filters.bucket, limit: filters.limit, page: filters.page });
    table.setAttribute("aria-busy", "true");
    exportButton.disabled = true;
    try {
      const [data, name] = await Promise.all([
        api(aggregatesPath(), { query, signal: current.signal }),
        Ops.tenantName(filters.tenant_slug),
      ]);
      if (data.results.length === 0 && filters.page > 1 && data.count > 0) {
        goToPage(pager.lastPage(filters.limit, data.count));
        return;
      }
      resolved = data.query;
      pageError.hidden = true;
      hideProblem();
      $("tenant-name").textContent = name ? `· ${name}` : `· ${filters.tenant_slug}`;
      showSummary(data.query, name);
      showRows(data.results);
      pager.show(filters.page, filters.limit, data.count, data.results.length, "buckets");
      exportButton.disabled = false;
    } catch (error) {
      if (current.signal.aborted) return;
      clear(tbody);
      showProblem(error, { retry: load });
    } finally {
      if (!current.signal.aborted) table.removeAttribute("aria-busy");
    }
  }

  // Later pages keep the range the first one resolved ("the last 24 hours" would otherwise move between pages).
  function goToPage(page) {
    if (resolved && !filters.from && !filters.to) {
      filters.from = resolved.from;
      filters.to = resolved.to;
    }
    filters.page = Math.max(1, page);
    history.pushState(null, "", currentLink({ page: filters.page > 1 ? filters.page : "" }));
    $("edit-filters").href = Ops.panelLink("/ops/", { ...filters, page: "" });
    load();
    window.scrollTo(0, 0);
  }

  // -- CSV export --------------------------------------------------------------------------------------------

  // The export is sent as a POST, as the panel always has. It needs no CSRF token: the request authenticates only
  // by the bearer token this page puts in its Authorization header, which another site's page can neither read
  // nor make a browser send; the API takes no cookie or other credential a browser would attach by itself.
  async function exportCsv() {
    if (!resolved) return;
    $("export-error").hidden = true;
    exportButton.disabled = true;
    exportButton.textContent = "Exporting…";
    const body = { kind: "aggregates", bucket: resolved.bucket, from: resolved.from, to: resolved.to };
    if (resolved.device) body.device = resolved.device;
    if (resolved.sensor) body.sensor = resolved.sensor;
    try {
      await downloadCsv(`${Ops.tenantPath(filters.tenant_slug)}/telemetry/export.csv`, {
        method: "POST",
        body,
        filename: `telemetry-${filters.tenant_slug}-aggregates.csv`,
      });
    } catch (error) {
      showError($("export-error"), error);
    } finally {
      exportButton.disabled = false;
      exportButton.textContent = "Export CSV";
    }
  }

  // -- start -------------------------------------------------------------------------------------------------

  async function main() {
    if (!(await Ops.staffOnly())) return;
    Ops.showIgnored($("url-notice"), Ops.ignoredParams());
    if (!filters.tenant_slug) {
      clear(tbody).append(h("tr", {}, h("td", { class: "empty", colspan: COLUMNS },
        "No tenant chosen: ", h("a", { href: "/ops/" }, "choose one and the filters"), ".")));
      table.removeAttribute("aria-busy");
      return;
    }
    $("edit-filters").href = Ops.panelLink("/ops/", { ...filters, page: "" });
    pager = wirePager(goToPage);
    exportButton.addEventListener("click", exportCsv);
    window.addEventListener("popstate", () => {
      filters = Ops.readFilters();
      $("edit-filters").href = Ops.panelLink("/ops/", { ...filters, page: "" });
      load();
    });
    await load();
  }

  main();
})();
