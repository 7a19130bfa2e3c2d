// Shared by every page: the bearer token, API calls, safe DOM building, formatting and the top bar.
// Values from the API only ever reach the page as text nodes or attributes, never as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "cvat-sync.token";
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

  // Only a path on this site: never another origin, so a crafted link cannot bounce a login elsewhere.
  function safeNext(value) {
    if (typeof value !== "string" || !value.startsWith("/") || value.startsWith("//") || value.includes("\\")) {
      return "/";
    }
    return value;
  }

  function redirectToLogin() {
    const next = location.pathname + location.search;
    location.assign("/login?next=" + encodeURIComponent(next));
  }

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
  async function api(path, options = {}) {
    const { method = "GET", body, query, signal, raw = false, accept = "application/json" } = options;
    const token = getToken();
    if (!token) {
      redirectToLogin();
      throw new ApiError(401, "unauthorized", "not signed in", null, true);
    }
    const headers = { Authorization: `Bearer ${token}`, Accept: accept };
    let payload;
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const search = query ? String(query) : "";
    const response = await fetch(search ? `${path}?${search}` : path, {
      method,
      headers,
      body: payload,
      signal,
      cache: "no-store",
      credentials: "omit",
    });
    if (response.status === 401) {
      clearToken();
      redirectToLogin();
      throw new ApiError(401, "unauthorized", "session expired", null, true);
    }
    if (!response.ok) throw await errorOf(response);
    if (raw) return response;
    return response.status === 204 ? null : response.json();
  }

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

  function debounce(fn, milliseconds) {
    let timer = null;
    return (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), milliseconds);
    };
  }

  function hasRole(principal, role) {
    return (ROLE_RANK[principal && principal.role] ?? -1) >= ROLE_RANK[role];
  }

  function showError(target, error) {
    if (error && error.redirecting) return;
    if (error && error.name === "AbortError") return;
    target.textContent = error && error.message ? error.message : String(error);
    target.hidden = false;
  }

  // Every signed-in page: checks the token, fills the top bar, shows admin links; resolves to the principal.
  async function initPage() {
    const principal = await api("/api/v1/auth/me");
    const who = document.getElementById("whoami");
    if (who) who.textContent = `${principal.name} · ${principal.role || "viewer"}`;
    const adminLink = document.getElementById("nav-webhooks");
    if (adminLink) adminLink.hidden = !hasRole(principal, "admin");
    const logout = document.getElementById("logout");
    if (logout) {
      logout.hidden = false;
      logout.addEventListener("click", () => {
        clearToken();
        location.assign("/login");
      });
    }
    return principal;
  }

  window.CvatSync = Object.freeze({
    ApiError, api, getToken, saveToken, clearToken, safeNext, redirectToLogin, h, clear, isHttpUrl,
    formatDate, formatNumber, debounce, hasRole, showError, initPage,
  });
})();
