// Shared by the ops pages as `window.Ops`: the filters as the panel's URLs name them and as the API names them,
// the tenant API paths, UTC times and values, the staff gate and the notes on ignored URL values.
// Like `mirante.js`, it only ever puts API data in the page as text nodes or attributes.
"use strict";

(function () {
  const { api, h, clear, initPage, showProblem, readQuery } = window.Mirante;

  const PRESET_BUCKETS = ["1m", "5m", "15m", "1h", "1d"];
  const DEFAULT_BUCKET = "1h";
  const DEFAULT_LIMIT = 200;
  const MAX_LIMIT = 1000;
  const MAX_TENANT_PAGES = 100;
  const DENIED = "The ops panel is open to staff accounts only: yours is not one. "
    + "Tenant users read their own tenant's data through the API.";

  // Shapes only: the API checks the meaning (a real instant, a bucket size it supports) and says what is wrong.
  const SLUG = /^[a-z][a-z0-9_-]{0,47}$/;
  const IDENTIFIER = /^[A-Za-z0-9_.:-]{1,128}$/;
  const TIME = /^\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?$/;
  const BUCKET = /^(?:\d{1,9}[smhdw]|[Pp][0-9WDTHMSwdthms]{1,30})$/;

  // The query string of every ops page, under the names the panel's bookmarks use.
  const FIELDS = {
    tenant_slug: { pattern: SLUG, maxLength: 48 },
    device_id: { pattern: IDENTIFIER, maxLength: 128 },
    sensor_id: { pattern: IDENTIFIER, maxLength: 128 },
    from: { pattern: TIME, maxLength: 40 },
    to: { pattern: TIME, maxLength: 40 },
    bucket: { pattern: BUCKET, maxLength: 32, default: DEFAULT_BUCKET },
    limit: { integer: true, min: 1, max: MAX_LIMIT, default: DEFAULT_LIMIT },
    page: { integer: true, min: 1, max: 1000000, default: 1 },
    offset: { integer: true, min: 0, max: 1000000000, default: 0 },
  };
  const FIELD_HINTS = {
    tenant_slug: "not a tenant slug",
    device_id: "not a device id",
    sensor_id: "not a sensor id",
    from: "not an ISO 8601 time",
    to: "not an ISO 8601 time",
    bucket: "not a bucket size",
    limit: `not a whole number from 1 to ${MAX_LIMIT}`,
    page: "not a page number",
    offset: "not an offset",
  };
  // The panel's names and the API's.
  const API_NAMES = { device_id: "device", sensor_id: "sensor", from: "from", to: "to" };

  const $ = (id) => document.getElementById(id);

  // The filters of the current URL, for pages whose default page size is `limitDefault`. An `offset` (older
  // bookmarks page by offset) turns into the page holding it.
  function readFilters(limitDefault = DEFAULT_LIMIT) {
    const fields = { ...FIELDS, limit: { ...FIELDS.limit, default: limitDefault } };
    const values = readQuery(fields);
    if (!new URLSearchParams(location.search).has("page") && values.offset > 0) {
      values.page = Math.floor(values.offset / values.limit) + 1;
    }
    delete values.offset;
    return values;
  }

  // Parameters present in the URL but unusable, with why: they are left out, and the page says so.
  function ignoredParams(limitDefault = DEFAULT_LIMIT) {
    const fields = { ...FIELDS, limit: { ...FIELDS.limit, default: limitDefault } };
    const params = new URLSearchParams(location.search);
    const ignored = [];
    for (const key of Object.keys(fields)) {
      const raw = (params.get(key) || "").trim();
      if (!raw) continue;
      const read = readQuery({ [key]: fields[key] }, `?${new URLSearchParams({ [key]: raw })}`)[key];
      if (String(read) !== raw && !(fields[key].integer && Number(raw) === read)) {
        ignored.push(`${key}: ${FIELD_HINTS[key]}`);
      }
    }
    return ignored;
  }

  function showIgnored(target, ignored) {
    if (!ignored.length) return;
    target.textContent = `Left out of the query (${ignored.join("; ")}).`;
    target.hidden = false;
  }

  // A panel URL (`/ops/...`) for `values` under the panel's names; empty values are left out.
  function panelLink(path, values) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(values)) {
      if (value === undefined || value === null || value === "") continue;
      params.set(key, String(value));
    }
    const search = params.toString();
    return search ? `${path}?${search}` : path;
  }

  // The panels take the shorter ISO 8601 forms people type (`2025-10-17`, `2025-10-17T10:30`, no zone meaning
  // UTC); the API takes only full RFC 3339 date-times, so a time is written out in UTC before it is sent. One the
  // browser cannot read goes as typed, for the API to refuse and the page to show why.
  function apiTime(time) {
    const zoned = /(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$/.test(time) || !/[Tt ]/.test(time) ? time : `${time}Z`;
    const moment = Date.parse(zoned);
    return Number.isNaN(moment) ? time : new Date(moment).toISOString();
  }

  // The API's query for the panel's filters (device, sensor, range), plus `extra` as given.
  function apiQuery(filters, extra = {}) {
    const query = new URLSearchParams();
    for (const [panelName, apiName] of Object.entries(API_NAMES)) {
      if (!filters[panelName]) continue;
      query.set(apiName, apiName === "from" || apiName === "to" ? apiTime(filters[panelName]) : filters[panelName]);
    }
    for (const [key, value] of Object.entries(extra)) {
      if (value !== undefined && value !== null && value !== "") query.set(key, String(value));
    }
    return query;
  }

  function tenantPath(slug) {
    return `/api/v1/tenants/${encodeURIComponent(slug)}`;
  }

  // Every tenant (staff see them all), page after page of the tenant list.
  async function allTenants() {
    const tenants = [];
    for (let page = 1; page <= MAX_TENANT_PAGES; page += 1) {
      const data = await api("/api/v1/tenants", { query: new URLSearchParams({ page: String(page), page_size: "200" }) });
      tenants.push(...data.results);
      if (!data.next || data.results.length === 0) break;
    }
    return tenants;
  }

  // The tenant's display name, or null when it cannot be read (the page's main query reports why).
  async function tenantName(slug) {
    try {
      return (await api(tenantPath(slug))).name;
    } catch (error) {
      return null;
    }
  }

  // The page's gate: staff see `#content`; anyone else gets the 403 panel; signed-out users go to the sign-in page.
  async function staffOnly() {
    try {
      const principal = await initPage({ staff: true, denied: DENIED });
      $("content").hidden = false;
      return principal;
    } catch (error) {
      if (error.status === 403 && !error.redirecting) {
        $("denied-text").textContent = error.message;
        $("denied").hidden = false;
      } else {
        showProblem(error, { retry: () => location.reload() });
      }
      return null;
    }
  }

  // "2025-10-17 10:05:00" in UTC; milliseconds only when asked for and not zero.
  function formatUtc(value, options = {}) {
    if (!value) return "—";
    const moment = new Date(value);
    if (Number.isNaN(moment.getTime())) return String(value);
    const text = moment.toISOString();
    const millis = options.millis && text.slice(19, 23) !== ".000" ? text.slice(19, 23) : "";
    return `${text.slice(0, 10)} ${text.slice(11, 19)}${millis}`;
  }

  function utcTime(value, options = {}) {
    return h("time", { datetime: value, title: value }, formatUtc(value, options));
  }

  // Readings as numbers with a decimal point whatever the browser's language, like the CSV files.
  const valueFormat = new Intl.NumberFormat("en-US", { maximumFractionDigits: 4, useGrouping: false });

  function formatValue(value) {
    return value === null || value === undefined ? "—" : valueFormat.format(value);
  }

  function bucketLabel(bucket) {
    return PRESET_BUCKETS.includes(bucket) ? bucket : `${bucket} (custom)`;
  }

  // A definition list of [label, node or text, key] items.
  function showFields(target, items) {
    clear(target);
    for (const [label, value, key] of items) {
      target.append(h("dt", {}, label), h("dd", { dataset: { field: key } }, value));
    }
  }

  window.Ops = Object.freeze({
    PRESET_BUCKETS, DEFAULT_BUCKET, DEFAULT_LIMIT, MAX_LIMIT, FIELDS, SLUG, IDENTIFIER, TIME, BUCKET,
    readFilters, ignoredParams, showIgnored, panelLink, apiQuery, tenantPath, tenantName, allTenants, staffOnly, formatUtc,
    utcTime, formatValue, bucketLabel, showFields,
  });
})();
