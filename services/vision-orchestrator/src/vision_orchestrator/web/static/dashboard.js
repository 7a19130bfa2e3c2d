// The dashboard (operators): the system's health with its reasons, the totals and recent performance, live.
"use strict";

(function () {
  const { api, h, clear, formatNumber, initPage, showProblem, hideProblem } = window.Mirante;
  const { poll, duration, DENIED } = window.Vision;
  const $ = (id) => document.getElementById(id);

  let poller = null;

  function card(key, label, value, sub) {
    return h("div", { class: "card", dataset: { card: key } },
      h("span", { class: "card-label" }, label),
      h("span", { class: "card-value" }, value),
      sub ? h("span", { class: "card-sub" }, sub) : null);
  }

  function render(data) {
    const health = $("health");
    health.className = `badge health-${data.system_health}`;
    health.textContent = data.system_health;
    clear($("health-reasons")).append(...data.health_reasons.map((reason) => h("li", {}, reason)));
    clear($("totals")).append(
      card("machines", "Machines", formatNumber(data.total_machines),
        `${formatNumber(data.online_machines)} online · ${formatNumber(data.maintenance_machines)} in maintenance`),
      card("pending", "Pending", formatNumber(data.pending_inspections)),
      card("processing", "On machines", formatNumber(data.processing_inspections), "assigned or processing"),
      card("completed", "Completed", formatNumber(data.completed_inspections)),
      card("failed", "Failed", formatNumber(data.failed_inspections)),
      card("cancelled", "Cancelled", formatNumber(data.cancelled_inspections)),
      card("total", "Inspections", formatNumber(data.total_inspections)),
    );
    const metrics = data.performance_metrics;
    $("window").textContent = `· inspections finished in the last ${formatNumber(data.window_minutes)} min`;
    clear($("performance")).append(
      card("average", "Average processing", duration(metrics.average_processing_time)),
      card("throughput", "Throughput", `${formatNumber(metrics.throughput_per_hour)}/h`),
      card("success", "Success rate",
        metrics.success_rate === null ? "—" : `${formatNumber(metrics.success_rate)} %`),
    );
  }

  async function load() {
    try {
      render(await api("/api/v1/dashboard/"));
      hideProblem();
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
    $("dashboard-view").hidden = false;
    poller = poll(load, { interval: 5000, status: $("live-status") });
  }

  main();
})();
