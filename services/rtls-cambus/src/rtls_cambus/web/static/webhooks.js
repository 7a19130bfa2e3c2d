// Webhook subscriptions (admins of the whole suite): the list, page by page, and the chosen subscription's
// delivery log (newest first, by status) with every attempt and a button to deliver again.
"use strict";

(function () {
  const M = window.Mirante;
  const { h, clear, api, formatDate, formatNumber, plural } = M;
  const PAGE_SIZE = 20;
  const DELIVERIES = 50;
  const DELIVERY_STATES = ["pending", "delivered", "failed"];
  const FIELDS = {
    page: { integer: true, min: 1, max: 1000000, default: 1 },
    subscription: { pattern: /^[1-9][0-9]{0,18}$/ },
    status: { choices: DELIVERY_STATES },
  };
  const DENIED = "Webhook subscriptions carry the whole suite's events: they are for admins not bound to a tenant.";
  const state = { query: {}, pager: null, subscriptions: [] };
  const $ = (id) => document.getElementById(id);

  function stateBadge(subscription) {
    if (subscription.enabled) return h("span", { class: "badge ok" }, "enabled");
    return h("span", { class: "badge warn", title: subscription.disabled_reason || "" },
      subscription.disabled_reason ? `disabled: ${subscription.disabled_reason}` : "disabled");
  }

  function showSubscriptions(page) {
    const body = clear($("subscriptions-body"));
    state.subscriptions = page.results;
    for (const subscription of page.results) {
      const selected = String(subscription.id) === state.query.subscription;
      const button = h("button", { type: "button", dataset: { action: "deliveries" } }, "Delivery log");
      button.addEventListener("click", () => select(String(subscription.id)));
      body.append(h("tr", { class: selected ? "selected" : null, dataset: { subscriptionId: subscription.id } },
        h("td", { class: "wrap mono" }, subscription.url,
          subscription.description ? h("div", { class: "muted" }, subscription.description) : null),
        h("td", { class: "wrap" }, subscription.event_types.join(", ")),
        h("td", {}, stateBadge(subscription)),
        h("td", {}, formatDate(subscription.created_at)),
        h("td", {}, button)));
    }
    if (!page.results.length) {
      M.showEmptyRow(body, 5, {
        title: "No subscriptions yet",
        text: "Subscribe a URL to the suite's events with POST /api/v1/webhooks; its deliveries show here.",
      });
    }
    state.pager.show(state.query.page, PAGE_SIZE, page.count, page.results.length, ["subscription", "subscriptions"]);
  }

  async function loadSubscriptions() {
    const page = await api("/api/v1/webhooks", { query: `page=${state.query.page}&page_size=${PAGE_SIZE}` });
    if (!page.results.length && page.count > 0 && state.query.page > 1) {
      state.query.page = state.pager.lastPage(PAGE_SIZE, page.count);
      return loadSubscriptions();
    }
    showSubscriptions(page);
  }

  function answer(delivery) {
    if (delivery.last_status_code !== null) return `HTTP ${delivery.last_status_code}`;
    return delivery.last_error || "—";
  }

  function attempts(delivery) {
    if (!delivery.attempt_log.length) return null;
    return h("ol", { class: "attempts" }, ...delivery.attempt_log.map((attempt) =>
      h("li", {}, `${formatDate(attempt.attempted_at, { seconds: true })} · ` +
        `${attempt.status_code !== null ? `HTTP ${attempt.status_code}` : attempt.error || "no answer"} · ` +
        `${formatNumber(attempt.duration_ms)} ms`)));
  }

  async function redeliver(delivery, button) {
    $("delivery-error").hidden = true;
    button.disabled = true;
    try {
      await api(`/api/v1/webhooks/${state.query.subscription}/deliveries/${delivery.id}/redeliver`, { method: "POST" });
      await loadDeliveries();
    } catch (error) {
      M.showError($("delivery-error"), error);
      button.disabled = false;
    }
  }

  async function loadDeliveries() {
    const id = state.query.subscription;
    $("deliveries-panel").hidden = !id;
    if (!id) return;
    const chosen = state.subscriptions.find((subscription) => String(subscription.id) === id);
    $("deliveries-of").textContent = chosen ? `· ${chosen.url}` : `· subscription #${id}`;
    const query = new URLSearchParams({ page_size: String(DELIVERIES) });
    if (state.query.status) query.set("status", state.query.status);
    $("delivery-error").hidden = true;
    const body = clear($("deliveries-body"));
    let page;
    try {
      page = await api(`/api/v1/webhooks/${id}/deliveries`, { query });
    } catch (error) {
      M.showError($("delivery-error"), error);
      return;
    }
    for (const delivery of page.results) {
      const button = h("button", { type: "button", dataset: { action: "redeliver" } }, "Redeliver");
      button.addEventListener("click", () => redeliver(delivery, button));
      const tone = { delivered: "ok", failed: "danger", pending: "info" }[delivery.status] || "";
      body.append(h("tr", { dataset: { deliveryId: delivery.id, status: delivery.status } },
        h("td", { class: "wrap" }, delivery.event_type, h("div", { class: "muted mono" }, delivery.msg_id)),
        h("td", {}, h("span", { class: `badge ${tone}` }, delivery.status), attempts(delivery)),
        h("td", { class: "num" }, formatNumber(delivery.attempts)),
        h("td", { class: "wrap answer" }, answer(delivery)),
        h("td", {}, formatDate(delivery.created_at)),
        h("td", {}, formatDate(delivery.delivered_at)),
        h("td", {}, button)));
    }
    if (!page.results.length) {
      M.showEmptyRow(body, 7, { title: "No deliveries", text: "Events this subscription names appear here as they are sent." });
    }
    $("deliveries-summary").textContent = page.count > page.results.length
      ? `The newest ${formatNumber(page.results.length)} of ${plural(page.count, "delivery", "deliveries")}.`
      : plural(page.count, "delivery", "deliveries");
  }

  function select(id) {
    state.query.subscription = id;
    M.writeQuery(state.query, FIELDS, "push");
    for (const row of document.querySelectorAll("#subscriptions-body tr")) {
      row.classList.toggle("selected", row.dataset.subscriptionId === id);
    }
    loadDeliveries();
  }

  async function load() {
    try {
      await loadSubscriptions();
      await loadDeliveries();
      M.hideProblem();
    } catch (error) {
      M.showProblem(error, { retry: load, forbidden: DENIED });
    }
  }

  async function start() {
    try {
      await M.initPage({ role: "admin", denied: DENIED });
    } catch (error) {
      M.showProblem(error, { retry: start, forbidden: DENIED });
      return;
    }
    await load();
  }

  document.addEventListener("DOMContentLoaded", () => {
    state.query = M.readQuery(FIELDS);
    state.pager = M.wirePager((page) => {
      state.query.page = page;
      M.writeQuery(state.query, FIELDS, "push");
      load();
    });
    const statusSelect = $("delivery-status");
    clear(statusSelect).append(h("option", { value: "" }, "Any"),
      ...DELIVERY_STATES.map((status) => h("option", { value: status }, status)));
    statusSelect.value = state.query.status;
    statusSelect.addEventListener("change", () => {
      state.query.status = statusSelect.value;
      M.writeQuery(state.query, FIELDS);
      loadDeliveries();
    });
    start();
  });
})();
