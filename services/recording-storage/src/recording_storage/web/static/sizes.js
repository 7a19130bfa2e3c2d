// Byte sizes for the recordings pages, read as `window.RecordingSizes`.
"use strict";

(function () {
  const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

  function formatBytes(value) {
    if (value === null || value === undefined) return "—";
    let size = Number(value);
    let unit = 0;
    while (size >= 1024 && unit < UNITS.length - 1) {
      size /= 1024;
      unit += 1;
    }
    return unit === 0 ? `${size} B` : `${size.toFixed(size < 10 ? 1 : 0)} ${UNITS[unit]}`;
  }

  window.RecordingSizes = Object.freeze({ formatBytes });
})();
