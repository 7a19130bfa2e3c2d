// Shared by every page of the suite: the bearer token, API calls, safe DOM building, formatting, query-string
// filters, file downloads and the top bar. Page scripts read it as `window.Mirante`.
// Values from the API only ever reach the page as text nodes or attributes, never as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "mirante.token";
  const LOGIN_PATH = "/login";
  const ROLE_RANK = { viewer: 0, operator: 1, admin: 2 };

  class ApiError extends Error {
    constructor(status, code, message, details, redirecting) {
      super(message);
      this.name = "ApiError";
      this.status = status;
      this.code = code;
      this.details = details ?? null;
      this.redirecting = Boolean(redirecting);
    }
  }

  // -- the token ---------------------------------------------------------------------------------------------

  function getToken() {
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (!saved) return null;
    try {
      const { token, expiresAt } = JSON.parse(saved);
      if (typeof token === "string" && token && (!expiresAt || Date.now() < expiresAt)) return token;
    } catch (error) {
      // An unreadable entry is dropped like an expired one.
    }
    sessionStorage.removeItem(TOKEN_KEY);
    return null;
  }

  function saveToken(token, expiresInSeconds) {
    const expiresAt = Number.isFinite(expiresInSeconds) ? Date.now() + expiresInSeconds * 1000 : null;
    sessionStorage.setItem(TOKEN_KEY, JSON.stringify({ token, expiresAt }));
  }

  function clearToken() {
    sessionStorage.removeItem(TOKEN_KEY);
  }

  // Only a path on this site, judged as the browser will parse it (ends trimmed, tabs and newlines dropped,
  // a backslash read as "/"), then resolved by the browser's own URL parser: a crafted link cannot bounce a login to
  // another origin. The server's /login applies the same rule (mirante.web.redirects.safe_next).
  function safeNext(value, fallback = "/") {
    if (typeof value !== "string") return fallback;
    const cleaned = value.replace(/^[\u0000-\u0020]+|[\u0000-\u0020]+$/g, "").replace(/[\t\n\r]/g, "");
    const path = cleaned.replace(/\\/g, "/").split(/[?#]/, 1)[0];
    if (!path.startsWith("/") || path.includes("//")) return fallback;
    let url;
    try {
      url = new URL(cleaned, location.origin);
    } catch (error) {
      return fallback;
    }
    if (url.origin !== location.origin) return fallback;
    return url.pathname + url.search + url.hash;
  }

  function redirectToLogin() {
    const next = location.pathname + location.search;
    location.assign(`${LOGIN_PATH}?next=${encodeURIComponent(next)}`);
  }

  // -- the API -----------------------------------------------------------------------------------------------

  async function errorOf(response) {
    let code = "error";
    let message = `${response.status} ${response.statusText}`.trim();
    let details = null;
    try {
      const data = await response.json();
      if (data && data.error) {
        code = data.error.code || code;
        message = data.error.message || message;
        details = data.error.details ?? null;
      }
    } catch (error) {
      // Not JSON: keep the status line as the message.
    }
    return new ApiError(response.status, code, message, details, false);
  }

  // Calls the API with the bearer token; a missing or refused token sends the user to the login page.
  // options: method, body (sent as JSON), form (a FormData sent as multipart, for uploads), query (URLSearchParams
  // or string), signal, raw (the Response), accept.
  async function api(path, options = {}) {
    const { method = "GET", body, form, query, signal, raw = false, accept = "application/json" } = options;
    const token = getToken();
    if (!token) {
      redirectToLogin();
      throw new ApiError(401, "unauthorized", "not signed in", null, true);
    }
    const headers = { Authorization: `Bearer ${token}`, Accept: accept };
    let payload;
    if (form !== undefined) {
      // The browser writes the multipart Content-Type with its boundary.
      payload = form;
    } else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const search = query ? String(query) : "";
    let response;
    try {
      response = await fetch(search ? `${path}?${search}` : path, {
        method,
        headers,
        body: payload,
        signal,
        cache: "no-store",
        credentials: "omit",
      });
    } catch (error) {
      if (error && error.name === "AbortError") throw error;
      throw new ApiError(0, "unreachable", "The service could not be reached.", null, false);
    }
    if (response.status === 401) {
      clearToken();
      redirectToLogin();
      throw new ApiError(401, "unauthorized", "session expired", null, true);
    }
    if (!response.ok) throw await errorOf(response);
    if (raw) return response;
    return response.status === 204 ? null : response.json();
  }

  // -- downloads ---------------------------------------------------------------------------------------------

  function filenameOf(response, fallback) {
    const header = response.headers.get("Content-Disposition") || "";
    const encoded = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(header);
    let name = null;
    if (encoded) {
      try {
        name = decodeURIComponent(encoded[1].trim());
      } catch (error) {
        name = null;
      }
    }
    if (!name) {
      const plain = /filename\s*=\s*(?:"([^"]*)"|([^;\s]+))/i.exec(header);
      name = plain ? plain[1] || plain[2] : null;
    }
    const cleaned = name ? name.replace(/[\\/]/g, "_").trim() : "";
    return cleaned || fallback;
  }

  // Hands a blob to the browser as a file named `filename`.
  function saveBlob(blob, filename) {
    const url = URL.createObjectURL(blob);
    const link = h("a", { href: url, download: filename, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  }

  // Exports need the bearer token (and often a JSON body), so a link cannot fetch them: the answer is fetched
  // here and saved as a file, named by its Content-Disposition or else `filename`. Resolves to that name.
  async function downloadCsv(path, options = {}) {
    const { method = "POST", body, query, signal, filename = "export.csv", accept = "text/csv" } = options;
    const response = await api(path, { method, body, query, signal, raw: true, accept });
    const name = filenameOf(response, filename);
    saveBlob(await response.blob(), name);
    return name;
  }

  // -- query-string filters ----------------------------------------------------------------------------------

  // The URL is editable by anyone: readQuery keeps only well-formed values. `fields` maps each parameter to
  // { choices: [...] } | { pattern: /.../ } | { integer: true, min, max } and optionally { maxLength, default }.
  // Missing or bad values read as the field's default ("" unless given).
  function readQuery(fields, search = location.search) {
    const params = new URLSearchParams(search);
    const values = {};
    for (const [key, spec] of Object.entries(fields)) {
      const fallback = spec.default ?? "";
      const raw = params.get(key);
      let value = raw === null ? "" : raw.trim().slice(0, spec.maxLength ?? 200);
      if (value === "") value = fallback;
      else if (spec.integer) {
        const number = /^-?[0-9]{1,15}$/.test(value) ? Number(value) : Number.NaN;
        const tooLow = spec.min !== undefined && number < spec.min;
        const tooHigh = spec.max !== undefined && number > spec.max;
        value = Number.isSafeInteger(number) && !tooLow && !tooHigh ? number : fallback;
      } else if (spec.choices && !spec.choices.includes(value)) value = fallback;
      else if (spec.pattern && !spec.pattern.test(value)) value = fallback;
      values[key] = value;
    }
    return values;
  }

  // Puts `values` in the URL without reloading: empty values and those equal to the field's default are left
  // out, so the URL stays short and shareable. mode "push" adds a history entry, "replace" (default) does not.
  function writeQuery(values, fields = {}, mode = "replace") {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(values)) {
      if (value === undefined || value === null || value === "" || value === false) continue;
      if (fields[key] && fields[key].default !== undefined && value === fields[key].default) continue;
      params.set(key, String(value));
    }
    const search = params.toString();
    const url = location.pathname + (search ? `?${search}` : "");
    if (url !== location.pathname + location.search) {
      if (mode === "push") history.pushState(null, "", url);
      else history.replaceState(null, "", url);
    }
    return params;
  }

  // -- DOM and formatting ------------------------------------------------------------------------------------

  // h("a", {href: "/x", class: "y"}, "text", otherNode): children are text or nodes, never parsed as HTML.
  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = String(value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function clear(node) {
    node.replaceChildren();
    return node;
  }

  function isHttpUrl(value) {
    try {
      const url = new URL(value, location.origin);
      return url.protocol === "http:" || url.protocol === "https:";
    } catch (error) {
      return false;
    }
  }

  const numberFormat = new Intl.NumberFormat();
  const pad = (value) => String(value).padStart(2, "0");

  // Local time as "2025-01-06 14:05" (with seconds when asked): short, sortable, the same in every locale.
  function formatDate(value, options = {}) {
    if (!value) return "—";
    const moment = new Date(value);
    if (Number.isNaN(moment.getTime())) return String(value);
    const day = `${moment.getFullYear()}-${pad(moment.getMonth() + 1)}-${pad(moment.getDate())}`;
    const time = `${pad(moment.getHours())}:${pad(moment.getMinutes())}`;
    return `${day} ${time}${options.seconds ? `:${pad(moment.getSeconds())}` : ""}`;
  }

  function formatNumber(value) {
    return value === null || value === undefined ? "—" : numberFormat.format(value);
  }

  // "1 bucket", "1,200 buckets": the count formatted, with the noun that agrees with it.
  function plural(count, one, many = `${one}s`) {
    return `${formatNumber(count)} ${count === 1 ? one : many}`;
  }

  function debounce(fn, milliseconds) {
    let timer = null;
    return (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), milliseconds);
    };
  }

  function hasRole(principal, role) {
    return (ROLE_RANK[principal && principal.role] ?? -1) >= (ROLE_RANK[role] ?? Infinity);
  }

  // Shows an error's message in `target` (an element with the `error` class, hidden until needed).
  function showError(target, error) {
    if (error && error.redirecting) return;
    if (error && error.name === "AbortError") return;
    target.textContent = error && error.message ? error.message : String(error);
    target.hidden = false;
  }

  // -- page states: a failed load shown in place of the content, and designed empty lists ---------------------

  // A page marks what a failed load makes meaningless with data-page-content (summary, filters, table, pager)
  // and includes the page-state partial (#page-state); showProblem hides the former and explains in the latter.
  const NOT_CONFIGURED = /(_not_configured|_missing)$/;

  // What a failed load means and what the user can do. options.retry: a function the Retry button calls;
  // options.forbidden: what to say on 403 (default: ask an admin for operator rights).
  function problemOf(error, options = {}) {
    const status = error && Number.isInteger(error.status) ? error.status : 0;
    const message = error && error.message ? error.message : String(error);
    const next = encodeURIComponent(location.pathname + location.search);
    const problem = { status, message, title: "Something went wrong", advice: "", signIn: false, retry: true };
    if (status === 401) {
      Object.assign(problem, {
        title: "Sign in to continue", advice: "Your session ended or you are not signed in.", signIn: true,
        retry: false,
      });
    } else if (status === 403) {
      Object.assign(problem, {
        title: "Not open to your account",
        advice: options.forbidden || "Ask an admin for operator rights, then sign in again.",
        signIn: true, retry: false,
      });
    } else if (status === 404) {
      Object.assign(problem, { title: "Not found", retry: false });
    } else if (status === 503 && error && NOT_CONFIGURED.test(error.code || "")) {
      Object.assign(problem, {
        title: "Not configured yet",
        advice: "An administrator has to set this up on the server; retry once it is done.",
      });
    } else if (status === 503) {
      Object.assign(problem, { title: "Temporarily unavailable", advice: "Try again in a moment." });
    } else if (status >= 500) {
      Object.assign(problem, {
        title: "The service failed", advice: "Try again; if it keeps failing, the service log has the details.",
      });
    } else if (status === 0) {
      Object.assign(problem, {
        title: "Cannot reach the service", advice: "Check the network or whether the service is running, then retry.",
      });
    } else if (status === 400 || status === 422) {
      Object.assign(problem, { title: "The request was refused", advice: "Change the filters and try again." });
    }
    problem.signInHref = `${LOGIN_PATH}?next=${next}`;
    if (!options.retry) problem.retry = false;
    return problem;
  }

  function contentNodes() {
    return document.querySelectorAll("[data-page-content]");
  }

  // Shows `error` in #page-state instead of the page's content, with what to do about it. Ignores errors that
  // are already being handled (a redirect to sign-in, an aborted request).
  function showProblem(error, options = {}) {
    if (error && (error.redirecting || error.name === "AbortError")) return;
    const target = document.getElementById("page-state");
    if (!target) return;
    const problem = problemOf(error, options);
    for (const node of contentNodes()) node.hidden = true;
    const actions = h("div", { class: "page-state-actions" },
      problem.retry ? h("button", { type: "button", class: "primary", dataset: { action: "retry" }, onclick: () => {
        hideProblem();
        options.retry();
      } }, "Retry") : null,
      problem.signIn ? h("a", { class: "button", href: problem.signInHref, dataset: { action: "sign-in" } },
        problem.status === 403 ? "Sign in as someone else" : "Sign in") : null,
    );
    clear(target).append(
      h("h2", { class: "page-state-title" }, problem.title),
      h("p", { class: "page-state-message" }, problem.message),
      problem.advice ? h("p", { class: "page-state-advice muted" }, problem.advice) : null,
      actions,
    );
    target.dataset.kind = "error";
    target.dataset.status = String(problem.status);
    target.hidden = false;
  }

  // Puts the content back (before a reload, or once a load succeeded).
  function hideProblem() {
    const target = document.getElementById("page-state");
    if (target) {
      target.hidden = true;
      clear(target);
    }
    for (const node of contentNodes()) node.hidden = false;
  }

  // An empty list, designed: what is missing, why, and what to do. spec: { title, text, action: node }.
  function emptyState(spec) {
    return h("div", { class: "empty-state" },
      h("strong", { class: "empty-state-title" }, spec.title),
      spec.text ? h("p", { class: "empty-state-text muted" }, spec.text) : null,
      spec.action || null);
  }

  // Fills `tbody` with one row spanning `columns` holding emptyState(spec).
  function showEmptyRow(tbody, columns, spec) {
    clear(tbody).append(h("tr", { class: "empty-row" }, h("td", { class: "empty", colspan: columns }, emptyState(spec))));
  }

  // The pager of a list page (#page-summary, #page-number, #page-prev, #page-next): `onGo(page)` is called with
  // the page wanted; `show` fills it in after each load, `lastPage` says where a list that shrank now ends.
  // `noun` is `[one, many]` ("1 bucket", "2 buckets"), or a plural used whatever the count.
  function wirePager(onGo) {
    const $ = (id) => document.getElementById(id);
    const state = { page: 1 };
    $("page-prev").addEventListener("click", () => onGo(state.page - 1));
    $("page-next").addEventListener("click", () => onGo(state.page + 1));
    return {
      show(page, limit, count, shown, noun) {
        state.page = page;
        const pages = Math.max(1, Math.ceil(count / limit));
        const first = count === 0 || shown === 0 ? 0 : (page - 1) * limit + 1;
        const last = shown === 0 ? 0 : first + shown - 1;
        const [one, many] = Array.isArray(noun) ? noun : [noun, noun];
        $("page-summary").textContent = `${formatNumber(first)}–${formatNumber(last)} of ${plural(count, one, many)}`;
        $("page-number").textContent = `Page ${formatNumber(page)} of ${formatNumber(pages)}`;
        $("page-prev").disabled = page <= 1;
        $("page-next").disabled = page >= pages;
      },
      lastPage(limit, count) {
        return Math.max(1, Math.ceil(count / limit));
      },
    };
  }

  // Every signed-in page: checks the token, fills the top bar (#whoami, #logout), reveals the elements marked
  // data-min-role="operator|admin" or data-staff-only for those allowed, and resolves to the principal.
  // options.role / options.staff: the page itself needs them; otherwise it rejects with a 403 ApiError whose
  // message is options.denied.
  async function initPage(options = {}) {
    const principal = await api("/api/v1/auth/me");
    const who = document.getElementById("whoami");
    if (who) who.textContent = `${principal.name} · ${principal.role || "viewer"}`;
    for (const node of document.querySelectorAll("[data-min-role]")) {
      node.hidden = !hasRole(principal, node.dataset.minRole);
    }
    for (const node of document.querySelectorAll("[data-staff-only]")) {
      node.hidden = !principal.is_staff;
    }
    const logout = document.getElementById("logout");
    if (logout) {
      logout.hidden = false;
      logout.addEventListener("click", () => {
        clearToken();
        location.assign(LOGIN_PATH);
      });
    }
    const allowed = (!options.role || hasRole(principal, options.role)) && (!options.staff || principal.is_staff);
    if (!allowed) {
      throw new ApiError(403, "forbidden", options.denied || "This page is not open to your account.", null, false);
    }
    return principal;
  }

  window.Mirante = Object.freeze({
    ApiError, api, getToken, saveToken, clearToken, safeNext, redirectToLogin, h, clear, isHttpUrl,
    formatDate, formatNumber, plural, debounce, hasRole, showError, initPage, readQuery, writeQuery, saveBlob,
    downloadCsv, wirePager, problemOf, showProblem, hideProblem, emptyState, showEmptyRow,
  });
})();
