// Shared by the vision pages: refreshing a page live, relative times and durations. Read as `window.Vision`.
"use strict";

(function () {
  // Calls `load` now and every `interval` ms while the tab is visible; a refresh that fails (`load` resolves to
  // false or throws) waits twice as long as the last one, up to `max`, so a struggling server is not hammered.
  // A hidden tab stops refreshing and catches up as soon as it is shown again.
  // Returns { now(): refresh at once, stop() }. options.status: an element that says when it last refreshed.
  function poll(load, options = {}) {
    const interval = options.interval ?? 3000;
    const max = options.max ?? 60000;
    let delay = interval;
    let timer = null;
    let running = false;
    let again = false;
    let stopped = false;

    function schedule() {
      clearTimeout(timer);
      timer = null;
      if (!stopped && !document.hidden) timer = setTimeout(tick, delay);
    }

    async function tick() {
      clearTimeout(timer);
      timer = null;
      if (stopped || document.hidden) return;
      if (running) {
        again = true;
        return;
      }
      running = true;
      let ok = false;
      try {
        ok = (await load()) !== false;
      } catch (error) {
        ok = false;
      }
      running = false;
      delay = ok ? interval : Math.min(delay * 2, max);
      if (options.status) {
        options.status.textContent = ok
          ? `Live · updated ${new Date().toLocaleTimeString()}`
          : `Retrying in ${Math.round(delay / 1000)} s`;
      }
      if (again) {
        again = false;
        tick();
      } else schedule();
    }

    document.addEventListener("visibilitychange", () => {
      if (document.hidden) {
        clearTimeout(timer);
        timer = null;
      } else tick();
    });
    tick();
    return {
      now() {
        delay = interval;
        tick();
      },
      stop() {
        stopped = true;
        clearTimeout(timer);
      },
    };
  }

  // "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago"; "never" for no time at all.
  function relativeTime(value, now = Date.now()) {
    if (!value) return "never";
    const moment = new Date(value).getTime();
    if (Number.isNaN(moment)) return String(value);
    const seconds = Math.round((now - moment) / 1000);
    if (seconds < 5) return "just now";
    if (seconds < 60) return `${seconds} s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
    return `${Math.floor(seconds / 86400)} d ago`;
  }

  // 45 -> "45 s", 300 -> "5 min", 3900 -> "1 h 5 min"; "—" when unknown.
  function duration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return "—";
    const total = Math.max(0, Math.round(Number(seconds)));
    if (total < 60) return `${total} s`;
    if (total < 3600) return `${Math.round(total / 60)} min`;
    const hours = Math.floor(total / 3600);
    const minutes = Math.round((total % 3600) / 60);
    return minutes ? `${hours} h ${minutes} min` : `${hours} h`;
  }

  const DENIED = "The vision pages are for operators: viewers read the same figures through the API.";

  window.Vision = Object.freeze({ poll, relativeTime, duration, DENIED });
})();
