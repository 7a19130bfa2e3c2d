// Upload statistics (operators): the uploads in progress, and per UTC day the recordings finished, their volume
// and the failed uploads (sessions that expired unfinished, finishes refused).
"use strict";

(function () {
  const { api, h, clear, formatDate, formatNumber, plural, initPage, readQuery, writeQuery, showProblem,
    hideProblem, showEmptyRow } = window.Mirante;
  const { formatBytes } = window.RecordingSizes;

  const QUERY = { days: { choices: ["7", "30", "90"], default: "30" } };
  const DENIED = "Upload statistics are for operators.";
  const $ = (id) => document.getElementById(id);

  let state = readQuery(QUERY);
  let controller = null;

  function card(stat, label, value, sub) {
    return h("div", { class: "card", dataset: { stat } },
      h("div", { class: "card-label" }, label),
      h("div", { class: "card-value" }, value),
      sub ? h("div", { class: "card-sub muted" }, sub) : null);
  }

  function show(stats) {
    const progress = stats.in_progress;
    clear($("cards")).append(
      card("in-progress", "Uploads in progress", formatNumber(progress.sessions),
        progress.sessions ? `${formatBytes(progress.received_bytes)} of ${formatBytes(progress.declared_bytes)} received` : null),
      card("recordings", "Recordings finished", formatNumber(stats.totals.recordings), plural(stats.days.length, "day")),
      card("volume", "Volume", formatBytes(stats.totals.bytes)),
      card("failures", "Failed uploads", formatNumber(stats.totals.failed_sessions), "expired or refused at finish"),
    );
    $("failures-note").textContent = `Failed uploads are counted since ${formatDate(stats.failures_known_since)}.`;
    const tbody = $("days-body");
    if (stats.totals.recordings === 0 && stats.totals.failed_sessions === 0) {
      showEmptyRow(tbody, 5, {
        title: "No upload in these days",
        text: "Nothing was finished and no upload failed. Recorders upload when their sessions end.",
      });
      return;
    }
    const largest = Math.max(1, ...stats.days.map((day) => day.bytes));
    const rows = [...stats.days].reverse().map((day) =>
      h("tr", { dataset: { day: day.day } },
        h("td", {}, day.day),
        h("td", { class: "num recordings" }, formatNumber(day.recordings)),
        h("td", { class: "num bytes" }, formatBytes(day.bytes)),
        h("td", {}, h("meter", { class: "volume-bar", min: "0", max: String(largest), value: String(day.bytes) })),
        h("td", { class: "num failures" }, formatNumber(day.failed_sessions))));
    clear(tbody).append(...rows);
  }

  async function load() {
    if (controller) controller.abort();
    const current = new AbortController();
    controller = current;
    try {
      const stats = await api("/api/v1/uploads/statistics", { query: new URLSearchParams({ days: state.days }),
        signal: current.signal });
      hideProblem();
      show(stats);
    } catch (error) {
      if (current.signal.aborted) return;
      showProblem(error, { retry: load, forbidden: DENIED });
    }
  }

  async function main() {
    try {
      await initPage({ role: "operator", denied: DENIED });
    } catch (error) {
      showProblem(error, { retry: () => location.reload(), forbidden: DENIED });
      return;
    }
    $("days").value = state.days;
    $("days").addEventListener("change", () => {
      state = { days: $("days").value };
      writeQuery(state, QUERY, "push");
      load();
    });
    $("refresh").addEventListener("click", load);
    $("statistics-view").hidden = false;
    await load();
  }

  main();
})();
