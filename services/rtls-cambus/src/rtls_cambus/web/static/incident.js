// One incident: its fields, the status flow (operators move it along), its history, its thread (operators
// write to it) and its attachments (everyone opens them; operators upload).
"use strict";

(function () {
  const M = window.Mirante;
  const { h, clear, api, formatDate, formatNumber } = M;
  const { STATUS_LABELS, TRANSITIONS, actionLabel, severityBadge, statusBadge, formatBytes } = window.Rtls;
  const THREAD_PAGE = 100;
  const state = { id: null, principal: null, incident: null, threadPage: 0 };
  const $ = (id) => document.getElementById(id);

  function incidentId() {
    const match = /^\/incidents\/([1-9][0-9]{0,18})\/?$/.exec(location.pathname);
    return match ? match[1] : null;
  }

  // A name from the catalogue for an id the incident holds, or the id when it cannot be read.
  async function nameOf(path, id, label) {
    if (id === null) return "—";
    try {
      return label(await api(`${path}/${id}`));
    } catch (error) {
      return `#${id}`;
    }
  }

  async function showFields(incident) {
    const [building, floor, zone, group] = await Promise.all([
      nameOf("/api/v1/buildings", incident.building_id, (found) => found.name),
      nameOf("/api/v1/floors", incident.floor_id, (found) => found.name || `Level ${found.level}`),
      nameOf("/api/v1/zones", incident.zone_id, (found) => found.name),
      nameOf("/api/v1/support-groups", incident.support_group_id, (found) => found.name),
    ]);
    const openedBy = incident.rule_id
      ? `incident rule #${incident.rule_id} (${incident.source_event_type || "event"})`
      : incident.created_by ? `user #${incident.created_by}` : "—";
    const rows = [
      ["Description", incident.description || "—"],
      ["Where", [building, floor, zone].filter((part) => part !== "—").join(" · ") || "—"],
      ["Support group", group],
      ["Assignees", incident.assignee_ids.length ? incident.assignee_ids.map((id) => `user #${id}`).join(", ") : "nobody"],
      ["Opened by", openedBy],
      ["Opened", formatDate(incident.created_at)],
      ["Acknowledged", formatDate(incident.acknowledged_at)],
      ["In progress", formatDate(incident.in_progress_at)],
      ["Resolved", formatDate(incident.resolved_at)],
      ["Closed", formatDate(incident.closed_at)],
    ];
    const list = clear($("incident-fields"));
    for (const [label, value] of rows) {
      list.append(h("dt", {}, label), h("dd", { dataset: { field: label.toLowerCase().replaceAll(" ", "-") } }, value));
    }
  }

  function showStatusButtons(incident) {
    const buttons = clear($("status-buttons"));
    const targets = TRANSITIONS[incident.status];
    for (const target of targets) {
      const button = h("button", { type: "button", class: "primary", dataset: { target } }, actionLabel(incident.status, target));
      button.addEventListener("click", () => changeStatus(target, button));
      buttons.append(button);
    }
    if (!targets.length) buttons.append(h("span", { class: "muted" }, "Closed: nothing more to do."));
  }

  async function loadIncident() {
    const incident = await api(`/api/v1/incidents/${state.id}`);
    state.incident = incident;
    document.title = `${incident.title} · Incident · RTLS`;
    $("incident-title").textContent = incident.title;
    clear($("incident-badges")).append(severityBadge(incident.severity), " ", statusBadge(incident.status),
      " ", h("span", { class: "muted" }, `#${incident.id}`));
    showStatusButtons(incident);
    await showFields(incident);
  }

  async function loadHistory() {
    const changes = await api(`/api/v1/incidents/${state.id}/history`);
    clear($("history")).append(...changes.map((change) =>
      h("li", { dataset: { to: change.to_status } },
        `${formatDate(change.changed_at)} · ${STATUS_LABELS[change.to_status]} by ${change.changed_by_name}`,
        change.note ? h("span", { class: "muted" }, ` — ${change.note}`) : null)));
  }

  async function changeStatus(target, button) {
    $("status-error").hidden = true;
    button.disabled = true;
    const body = { status: target };
    if ($("status-note").value.trim()) body.note = $("status-note").value;
    try {
      await api(`/api/v1/incidents/${state.id}/status`, { method: "POST", body });
      $("status-note").value = "";
      await Promise.all([loadIncident(), loadHistory()]);
    } catch (error) {
      M.showError($("status-error"), error);
      button.disabled = false;
    }
  }

  // -- the thread ---------------------------------------------------------------------------------------------

  function message(item) {
    return h("li", { dataset: { messageId: item.id } },
      h("div", { class: "who" }, `${item.author_name} · ${formatDate(item.created_at)}`),
      h("div", { class: "body" }, item.body));
  }

  async function loadThread(more = false) {
    const page = more ? state.threadPage + 1 : 1;
    const found = await api(`/api/v1/incidents/${state.id}/messages`, { query: `page=${page}&page_size=${THREAD_PAGE}` });
    const thread = more ? $("thread") : clear($("thread"));
    thread.append(...found.results.map(message));
    if (!more && !found.results.length) thread.append(h("li", { class: "muted empty" }, "No messages yet."));
    state.threadPage = page;
    $("thread-count").textContent = `(${formatNumber(found.count)})`;
    $("thread-more").hidden = !found.next;
  }

  async function postMessage(event) {
    event.preventDefault();
    $("message-error").hidden = true;
    $("message-submit").disabled = true;
    try {
      await api(`/api/v1/incidents/${state.id}/messages`, { method: "POST", body: { body: $("message-body").value } });
      $("message-body").value = "";
      await loadThread();
    } catch (error) {
      M.showError($("message-error"), error);
    } finally {
      $("message-submit").disabled = false;
    }
  }

  // -- attachments --------------------------------------------------------------------------------------------

  async function openAttachment(attachment, button) {
    $("attachment-error").hidden = true;
    button.disabled = true;
    try {
      const path = `/api/v1/incidents/${state.id}/attachments/${attachment.id}`;
      const response = await api(path, { raw: true, accept: "*/*" });
      M.saveBlob(await response.blob(), attachment.original_name || attachment.stored_name);
    } catch (error) {
      M.showError($("attachment-error"), error);
    } finally {
      button.disabled = false;
    }
  }

  async function loadAttachments() {
    const found = await api(`/api/v1/incidents/${state.id}/attachments`, { query: "page_size=200" });
    $("attachment-count").textContent = `(${formatNumber(found.count)})`;
    const body = clear($("attachments-body"));
    for (const attachment of found.results) {
      const button = h("button", { type: "button", dataset: { action: "open" } }, "Open");
      button.addEventListener("click", () => openAttachment(attachment, button));
      body.append(h("tr", { dataset: { attachmentId: attachment.id } },
        h("td", { class: "wrap" }, attachment.original_name || attachment.stored_name),
        h("td", {}, attachment.content_type),
        h("td", { class: "num" }, formatBytes(attachment.size_bytes)),
        h("td", {}, attachment.uploaded_by_name),
        h("td", {}, formatDate(attachment.created_at)),
        h("td", {}, button)));
    }
    if (!found.results.length) M.showEmptyRow(body, 6, { title: "No attachments", text: "Photos, reports or logs go here." });
  }

  async function upload(event) {
    event.preventDefault();
    $("attachment-error").hidden = true;
    const file = $("upload-file").files[0];
    if (!file) return;
    const form = new FormData();
    form.append("file", file, file.name);
    $("upload-submit").disabled = true;
    try {
      await api(`/api/v1/incidents/${state.id}/attachments`, { method: "POST", form });
      $("upload-form").reset();
      await loadAttachments();
    } catch (error) {
      M.showError($("attachment-error"), error);
    } finally {
      $("upload-submit").disabled = false;
    }
  }

  async function start() {
    state.id = incidentId();
    try {
      state.principal = await M.initPage();
      if (!state.id) throw new M.ApiError(404, "not_found", "No incident has this address.");
      await Promise.all([loadIncident(), loadHistory(), loadThread(), loadAttachments()]);
      M.hideProblem();
    } catch (error) {
      M.showProblem(error, { retry: start });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("status-form").addEventListener("submit", (event) => event.preventDefault());
    $("message-form").addEventListener("submit", postMessage);
    $("thread-more").addEventListener("click", () => loadThread(true).catch((error) => M.showError($("message-error"), error)));
    $("upload-form").addEventListener("submit", upload);
    start();
  });
})();
