// One recording: the video beside its metadata. A <video> cannot send the bearer token, so the page asks the API
// for a short-lived signed URL to the content and gives that to the video, which then seeks with Range
// requests. When the URL has expired (a long viewing), the page asks for a new one and resumes where it was.
"use strict";

(function () {
  const { api, h, clear, formatDate, formatNumber, initPage, showProblem } = window.Mirante;
  const { formatBytes } = window.RecordingSizes;

  const $ = (id) => document.getElementById(id);
  const video = $("player");
  const ID = /^\/recordings\/([0-9a-fA-F-]{36})$/.exec(location.pathname);
  const recordingId = ID ? ID[1] : null;

  let expiresAt = 0;
  let renewing = false;

  function field(label, value) {
    return [h("dt", {}, label), h("dd", { dataset: { field: label } }, value === null || value === undefined || value === "" ? "—" : value)];
  }

  function showFields(recording) {
    const settings = recording.recorder_settings
      ? Object.entries(recording.recorder_settings).map(([key, value]) => `${key}: ${JSON.stringify(value)}`).join(", ")
      : null;
    clear($("recording-fields")).append(
      ...field("Started", formatDate(recording.start_time, { seconds: true })),
      ...field("WATS user", recording.wats_user),
      ...field("Machine", recording.wats_user_machine),
      ...field("WATS user IP", recording.wats_user_ip),
      ...field("Server", recording.server_name),
      ...field("Server IP", recording.server_ip),
      ...field("Server user", recording.server_user),
      ...field("Connection type", recording.connection_type),
      ...field("Connection code", recording.con_codigo === null ? null : formatNumber(recording.con_codigo)),
      ...field("Recorder settings", settings),
      ...field("Video size", formatBytes(recording.video_size)),
      ...field("SHA-256", h("span", { class: "mono" }, recording.video_sha256)),
      ...field("Metadata size", recording.metadata_size === null ? null : formatBytes(recording.metadata_size)),
      ...field("Recorder session", recording.client_session_id),
      ...field("Uploaded", formatDate(recording.created_at, { seconds: true })),
    );
    $("recording-title").textContent = `Recording of ${recording.wats_user || "an unknown user"} on ${recording.server_name || recording.server_ip || "an unknown server"}`;
    document.title = `${$("recording-title").textContent} · Recordings`;
  }

  async function attachSource() {
    const issued = await api(`/api/v1/recordings/${recordingId}/content-url`, { method: "POST" });
    // The page's clock may differ from the server's: the lifetime counts from now, here.
    expiresAt = Date.now() + issued.expires_in * 1000;
    const resumeAt = video.currentTime;
    const wasPlaying = !video.paused && !video.ended;
    video.src = issued.url;
    if (resumeAt > 0) {
      video.addEventListener("loadedmetadata", () => {
        video.currentTime = resumeAt;
        if (wasPlaying) video.play().catch(() => {});
      }, { once: true });
    }
    const download = $("download");
    download.href = `${issued.url}&download=true`;
    download.hidden = false;
  }

  async function onVideoError() {
    if (!renewing && Date.now() >= expiresAt - 5000) {
      renewing = true;
      try {
        await attachSource();
        $("player-error").hidden = true;
        return;
      } catch (error) {
        showProblem(error, { retry: () => location.reload() });
        return;
      } finally {
        renewing = false;
      }
    }
    const target = $("player-error");
    target.textContent = "The video could not be played: the browser may not support its format, or the file could not be read.";
    target.hidden = false;
  }

  async function main() {
    try {
      await initPage();
      if (!recordingId) throw new window.Mirante.ApiError(404, "not_found", "No such recording.");
      const recording = await api(`/api/v1/recordings/${recordingId}`);
      showFields(recording);
      $("player-view").hidden = false;
      video.addEventListener("error", onVideoError);
      await attachSource();
    } catch (error) {
      showProblem(error, { retry: () => location.reload() });
    }
  }

  main();
})();
