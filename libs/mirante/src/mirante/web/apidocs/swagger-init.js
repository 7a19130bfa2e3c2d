"use strict";
// Starts Swagger UI on /docs. A file rather than an inline script, so the page keeps the strict CSP.
(function () {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // The public validator is on the internet: no badge that calls it.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
  });
})();
