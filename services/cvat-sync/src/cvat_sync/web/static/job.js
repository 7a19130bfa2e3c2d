// One job: its fields, annotation counts, history, raw CVAT payload and the link that opens it in CVAT.
"use strict";

(function () {
  const { api, h, clear, formatDate, formatNumber, isHttpUrl, initPage, showProblem, hideProblem, showEmptyRow } =
    window.Mirante;

  const $ = (id) => document.getElementById(id);

  function jobId() {
    const match = /^\/jobs\/([1-9][0-9]*)\/?$/.exec(location.pathname);
    return match ? match[1] : null;
  }

  function listLink(key, value, text) {
    return h("a", { href: `/?${new URLSearchParams({ [key]: String(value) })}` }, text);
  }

  function changeText(value) {
    if (value === null || value === undefined) return "—";
    return typeof value === "object" ? JSON.stringify(value) : String(value);
  }

  function showFields(job) {
    const rows = [
      ["Task", job.task_id ? [job.task_name || "—", h("span", { class: "muted" }, ` (#${job.task_id})`)] : "—"],
      ["Project", job.project_id
        ? [listLink("project_id", job.project_id, job.project_name || `#${job.project_id}`), h("span", { class: "muted" }, ` (#${job.project_id})`)]
        : "—"],
      ["Assignee", job.assignee ? listLink("assignee", job.assignee, job.assignee) : h("span", { class: "muted" }, "unassigned")],
      ["Status", job.status],
      ["Stage", job.stage],
      ["State", job.state],
      ["Type", job.job_type || "—"],
      ["Frames", formatNumber(job.frame_count)],
      ["Created in CVAT", formatDate(job.cvat_created_at)],
      ["Updated in CVAT", formatDate(job.cvat_updated_at)],
      ["Last synced", formatDate(job.last_synced_at)],
      ["Annotations counted", formatDate(job.annotations_counted_at) +
        (job.counts_requested_at ? " (recount pending since " + formatDate(job.counts_requested_at) + ")" : "")],
    ];
    if (job.deleted) rows.push(["Deleted in CVAT", formatDate(job.deleted_at)]);
    const list = clear($("job-fields"));
    for (const [label, value] of rows) {
      list.append(h("dt", {}, label), h("dd", { dataset: { field: label.toLowerCase().replaceAll(" ", "-") } }, value));
    }
  }

  function showAnnotations(job) {
    const cards = [
      ["manual", "Manual", job.manual_annotations],
      ["interpolated", "Interpolated", job.interpolated_annotations],
      ["total", "Total", job.total_annotations],
    ];
    clear($("annotation-stats")).append(
      ...cards.map(([stat, label, value]) =>
        h("div", { class: "card", dataset: { stat } },
          h("span", { class: "card-label" }, `${label} annotations`),
          h("span", { class: "card-value" }, formatNumber(value)))),
    );
  }

  function showHistory(job) {
    $("history-count").textContent = job.history_count > job.history.length
      ? `(latest ${formatNumber(job.history.length)} of ${formatNumber(job.history_count)})`
      : `(${formatNumber(job.history_count)})`;
    const body = clear($("history-body"));
    if (job.history.length === 0) {
      showEmptyRow(body, 7, {
        title: "No recorded changes.",
        text: "Changes appear here when a sync or a webhook brings a new version of the job.",
      });
      return;
    }
    for (const change of job.history) {
      const moved = Object.entries(change.changes || {}).map(([field, pair]) => {
        const [before, after] = Array.isArray(pair) ? pair : [null, pair];
        return h("span", { class: "change" },
          h("span", { class: "field" }, `${field}: `), `${changeText(before)} → ${changeText(after)}`);
      });
      body.append(h("tr", { dataset: { changeId: change.id } },
        h("td", {}, h("time", { datetime: change.changed_at }, formatDate(change.changed_at, { seconds: true }))),
        h("td", {}, change.kind),
        h("td", {}, change.source),
        h("td", {}, moved.length ? moved : h("span", { class: "muted" }, "—")),
        h("td", {}, change.status),
        h("td", {}, `${change.stage} · ${change.state}`),
        h("td", {}, change.assignee || h("span", { class: "muted" }, "unassigned")),
      ));
    }
  }

  function showJob(job) {
    document.title = `Job #${job.id} · CVAT sync`;
    $("job-title").textContent = `Job #${job.id}${job.task_name ? ` · ${job.task_name}` : ""}`;
    const badges = clear($("job-badges"));
    badges.append(h("span", { class: `badge status-${["annotation", "validation", "completed"].includes(job.status) ? job.status : "other"}` }, job.status));
    if (job.deleted) badges.append(" ", h("span", { class: "badge deleted" }, "deleted in CVAT"));
    const link = $("cvat-link");
    if (isHttpUrl(job.cvat_link)) link.href = job.cvat_link;
    else link.hidden = true;
    showAnnotations(job);
    showFields(job);
    $("raw-json").textContent = JSON.stringify(job.raw, null, 2);
    showHistory(job);
    $("job").hidden = false;
  }

  async function main() {
    const id = jobId();
    try {
      await initPage();
      if (id === null) throw new Error("This is not a job address.");
      showJob(await api(`/api/v1/jobs/${id}`));
      hideProblem();
    } catch (error) {
      if (error.status === 404) error.message = `Job #${id} is not in the mirror.`;
      showProblem(error, { retry: main });
    }
  }

  main();
})();
