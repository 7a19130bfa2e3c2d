// The sign-in form: exchanges username and password for a bearer token kept in sessionStorage, then goes to
// the page named by `next` (a path on this site) or to the service's home page.
"use strict";

(function () {
  const { saveToken, clearToken, safeNext } = window.Mirante;

  const form = document.getElementById("login-form");
  const errorBox = document.getElementById("login-error");
  const submit = document.getElementById("login-submit");
  const home = safeNext(document.body.dataset.home);

  function fail(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
  }

  async function signIn(event) {
    event.preventDefault();
    errorBox.hidden = true;
    const username = document.getElementById("username").value.trim();
    const password = document.getElementById("password").value;
    if (!username || !password) {
      fail("Enter your username and password.");
      return;
    }
    submit.disabled = true;
    try {
      const response = await fetch("/api/v1/auth/login", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ username, password }),
        credentials: "omit",
        cache: "no-store",
      });
      if (response.status === 401) {
        fail("Wrong username or password.");
        return;
      }
      if (response.status === 429) {
        fail("Too many attempts; wait a minute and try again.");
        return;
      }
      if (!response.ok) {
        fail(`Sign-in failed (${response.status}).`);
        return;
      }
      const data = await response.json();
      saveToken(data.access_token, data.expires_in);
      location.assign(safeNext(new URLSearchParams(location.search).get("next"), home));
    } catch (error) {
      fail("The server could not be reached.");
    } finally {
      submit.disabled = false;
    }
  }

  clearToken();
  form.addEventListener("submit", signIn);
})();
