// Shared by the RTLS pages: the navigation, incident severities and statuses with their flow, and small
// formatters. Page scripts read it as `window.Rtls`, after `window.Mirante`.
"use strict";

(function () {
  const { h } = window.Mirante;

  const SEVERITIES = ["low", "medium", "high", "critical"];
  const STATUSES = ["open", "acknowledged", "in_progress", "resolved", "closed"];
  const STATUS_LABELS = {
    open: "Open", acknowledged: "Acknowledged", in_progress: "In progress", resolved: "Resolved", closed: "Closed",
  };
  // The server's flow (incidents/service.py TRANSITIONS): it decides, this only offers the buttons.
  const TRANSITIONS = {
    open: ["acknowledged"],
    acknowledged: ["in_progress"],
    in_progress: ["resolved"],
    resolved: ["closed", "in_progress"],
    closed: [],
  };

  function actionLabel(from, to) {
    if (from === "resolved" && to === "in_progress") return "Reopen";
    return { acknowledged: "Acknowledge", in_progress: "Start work", resolved: "Resolve", closed: "Close" }[to] || to;
  }

  function severityBadge(severity) {
    return h("span", { class: `badge severity severity-${severity}`, dataset: { severity } }, severity);
  }

  function statusBadge(status) {
    return h("span", { class: `badge status status-${status}`, dataset: { status } }, STATUS_LABELS[status] || status);
  }

  function formatBytes(size) {
    if (size < 1024) return `${size} B`;
    if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} KiB`;
    return `${(size / 1024 / 1024).toFixed(1)} MiB`;
  }

  // The page's own link in the navigation: <body data-page="..."> names it.
  function markNavigation() {
    const current = document.body.dataset.page;
    for (const link of document.querySelectorAll("[data-nav]")) {
      if (link.dataset.nav === current) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  document.addEventListener("DOMContentLoaded", markNavigation);

  window.Rtls = Object.freeze({
    SEVERITIES, STATUSES, STATUS_LABELS, TRANSITIONS, actionLabel, severityBadge, statusBadge, formatBytes,
  });
})();
