// The ops panel's start page: every tenant to choose from, and the filters of the telemetry query. The form's
// state is kept in this page's URL as it changes; submitting opens /ops/telemetry with the same parameters.
"use strict";

(function () {
  const { api, h, clear, debounce, showProblem } = window.Mirante;
  const Ops = window.Ops;

  const $ = (id) => document.getElementById(id);
  const form = $("query-form");
  const formError = $("form-error");
  const tenantSelect = $("f-tenant_slug");
  const deviceInput = $("f-device_id");
  const sensorInput = $("f-sensor_id");
  const bucketSelect = $("f-bucket");
  const customBucket = $("f-bucket-custom");
  const limitInput = $("f-limit");
  const TEXT_FIELDS = ["device_id", "sensor_id", "from", "to"];
  const SUGGESTIONS = 200;

  let deviceController = null;
  let sensorController = null;

  // -- the form and the URL ----------------------------------------------------------------------------------

  function fill(filters) {
    tenantSelect.value = filters.tenant_slug;
    for (const key of TEXT_FIELDS) $(`f-${key}`).value = filters[key];
    const preset = Ops.PRESET_BUCKETS.includes(filters.bucket);
    bucketSelect.value = preset ? filters.bucket : "custom";
    customBucket.value = preset ? "" : filters.bucket;
    $("custom-bucket-label").hidden = preset;
    limitInput.value = String(filters.limit);
  }

  function bucketValue() {
    return bucketSelect.value === "custom" ? customBucket.value.trim() : bucketSelect.value;
  }

  // The form's values under the panel's names, and what is wrong with them (empty when nothing is).
  function formValues() {
    const values = { tenant_slug: tenantSelect.value };
    for (const key of TEXT_FIELDS) values[key] = $(`f-${key}`).value.trim();
    values.bucket = bucketValue();
    values.limit = limitInput.value.trim();
    const problems = [];
    if (!values.tenant_slug) problems.push("Choose a tenant.");
    if (values.device_id && !Ops.IDENTIFIER.test(values.device_id)) {
      problems.push("A device id is 1 to 128 of A-Z a-z 0-9 _ . : -");
    }
    if (values.sensor_id && !Ops.IDENTIFIER.test(values.sensor_id)) {
      problems.push("A sensor is 1 to 128 of A-Z a-z 0-9 _ . : -");
    }
    for (const key of ["from", "to"]) {
      if (values[key] && (!Ops.TIME.test(values[key]) || Number.isNaN(Date.parse(values[key])))) {
        problems.push(`"${key}" must be an ISO 8601 time, e.g. 2025-10-17T10:30:00Z.`);
      }
    }
    if (values.from && values.to && Ops.TIME.test(values.from) && Ops.TIME.test(values.to)
      && Date.parse(withZone(values.from)) >= Date.parse(withZone(values.to))) {
      problems.push('"from" must be before "to".');
    }
    if (!values.bucket || !Ops.BUCKET.test(values.bucket)) {
      problems.push("A custom bucket is <n><s|m|h|d|w> (30s, 2h) or an ISO 8601 duration (PT90S, P7D).");
    }
    const limit = Number(values.limit);
    if (!/^[0-9]{1,4}$/.test(values.limit) || limit < 1 || limit > Ops.MAX_LIMIT) {
      problems.push(`Buckets per page: a whole number from 1 to ${Ops.MAX_LIMIT}.`);
    }
    return { values, problems };
  }

  // The panels read a time without a zone as UTC (`Ops.apiQuery` sends it so); so does this comparison.
  function withZone(time) {
    return /(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$/.test(time) || !/[Tt ]/.test(time) ? time : `${time}Z`;
  }

  function keepInUrl() {
    const { values } = formValues();
    const link = Ops.panelLink(location.pathname, {
      ...values,
      bucket: values.bucket === Ops.DEFAULT_BUCKET ? "" : values.bucket,
      limit: values.limit === String(Ops.DEFAULT_LIMIT) ? "" : values.limit,
    });
    if (link !== location.pathname + location.search) history.replaceState(null, "", link);
  }

  function submit(event) {
    event.preventDefault();
    formError.hidden = true;
    const { values, problems } = formValues();
    if (problems.length) {
      formError.textContent = problems.join(" ");
      formError.hidden = false;
      return;
    }
    keepInUrl();
    location.assign(Ops.panelLink("/ops/telemetry", values));
  }

  function reset() {
    const tenant = tenantSelect.value;
    fill({ tenant_slug: tenant, device_id: "", sensor_id: "", from: "", to: "", bucket: Ops.DEFAULT_BUCKET,
      limit: Ops.DEFAULT_LIMIT });
    formError.hidden = true;
    keepInUrl();
    loadSensors();
  }

  // -- choices -----------------------------------------------------------------------------------------------

  async function loadTenants(wanted) {
    const tenants = await Ops.allTenants();
    for (const tenant of tenants) {
      tenantSelect.append(h("option", { value: tenant.slug }, `${tenant.name} (${tenant.slug})`));
    }
    tenantSelect.dataset.loaded = String(tenants.length);
    if (wanted && !tenants.some((tenant) => tenant.slug === wanted)) {
      formError.textContent = `There is no tenant "${wanted}": choose one from the list.`;
      formError.hidden = false;
      return;
    }
    tenantSelect.value = wanted;
  }

  // Suggestions only: the fields accept any id, and a failed lookup just leaves the list empty.
  async function loadDevices() {
    if (deviceController) deviceController.abort();
    const list = clear($("device-options"));
    const slug = tenantSelect.value;
    if (!slug) return;
    const controller = new AbortController();
    deviceController = controller;
    const query = new URLSearchParams({ page_size: String(SUGGESTIONS), sort: "device_id" });
    const typed = deviceInput.value.trim();
    if (typed) query.set("q", typed);
    try {
      const data = await api(`${Ops.tenantPath(slug)}/devices`, { query, signal: controller.signal });
      for (const device of data.results) {
        list.append(h("option", { value: device.device_id }, device.name || null));
      }
    } catch (error) {
      // No suggestions, no harm.
    }
  }

  async function loadSensors() {
    if (sensorController) sensorController.abort();
    const list = clear($("sensor-options"));
    const slug = tenantSelect.value;
    const device = deviceInput.value.trim();
    if (!slug || !Ops.IDENTIFIER.test(device)) return;
    const controller = new AbortController();
    sensorController = controller;
    try {
      const detail = await api(`${Ops.tenantPath(slug)}/devices/${encodeURIComponent(device)}`, { signal: controller.signal });
      for (const sensor of detail.sensors) {
        list.append(h("option", { value: sensor.sensor }, sensor.name || null));
      }
    } catch (error) {
      // An unknown device has no sensors to suggest.
    }
  }

  // -- start -------------------------------------------------------------------------------------------------

  async function main() {
    const filters = Ops.readFilters();
    fill(filters);
    if (!(await Ops.staffOnly())) return;
    Ops.showIgnored($("url-notice"), Ops.ignoredParams());
    form.addEventListener("submit", submit);
    $("query-reset").addEventListener("click", reset);
    bucketSelect.addEventListener("change", () => {
      $("custom-bucket-label").hidden = bucketSelect.value !== "custom";
      if (bucketSelect.value === "custom") customBucket.focus();
    });
    form.addEventListener("change", keepInUrl);
    tenantSelect.addEventListener("change", () => {
      loadDevices();
      loadSensors();
    });
    deviceInput.addEventListener("input", debounce(loadDevices, 250));
    deviceInput.addEventListener("change", loadSensors);
    try {
      await loadTenants(filters.tenant_slug);
    } catch (error) {
      showProblem(error, { retry: () => location.reload() });
      return;
    }
    await Promise.all([loadDevices(), loadSensors()]);
  }

  main();
})();
