"""`/docs`: Swagger UI served by the service itself, from a pinned package, under the pages' strict CSP.

FastAPI's own `/docs` loads Swagger UI from a CDN and starts it with an inline script, so it stays blank on a
site without internet and breaks under `script-src 'self'`. Here the page links to files the service serves
(`/docs/assets/...`, versioned by content and cached for good) and starts Swagger UI from one of them.

ReDoc is not offered: its bundle injects `<style>` elements at run time, which the CSP refuses, and Swagger UI
plus `/openapi.json` already cover reading and trying the API.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response
from swagger_ui_bundle import swagger_ui_path

from mirante.web.errors import NotFoundError
from mirante.web.pages import LIBRARY_STATIC_DIR, PAGE_HEADERS, Asset, asset_response, read_asset

DOCS_PATH = "/docs"
ASSETS_PATH = f"{DOCS_PATH}/assets/"
_SWAGGER_DIR = Path(str(swagger_ui_path))
_INIT_SCRIPT = Path(__file__).resolve().parent / "swagger-init.js"


@cache
def docs_assets() -> Mapping[str, Asset]:
    """The files `/docs` uses, by the name it serves them under."""
    return {
        "swagger-ui-bundle.js": read_asset(_SWAGGER_DIR / "swagger-ui-bundle.js"),
        "swagger-ui.css": read_asset(_SWAGGER_DIR / "swagger-ui.css"),
        "swagger-init.js": read_asset(_INIT_SCRIPT),
        "favicon.svg": read_asset(LIBRARY_STATIC_DIR / "favicon.svg"),
    }


def _url(name: str) -> str:
    return html.escape(f"{ASSETS_PATH}{name}?v={docs_assets()[name].version}")


def docs_page(title: str, openapi_url: str) -> bytes:
    """The HTML of `/docs` for an API called `title` described at `openapi_url`."""
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{html.escape(title)} - API</title>
  <link rel="icon" href="{_url("favicon.svg")}" type="image/svg+xml">
  <link rel="stylesheet" href="{_url("swagger-ui.css")}">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{html.escape(openapi_url)}"></div>
  <script src="{_url("swagger-ui-bundle.js")}"></script>
  <script src="{_url("swagger-init.js")}"></script>
</body>
</html>
""".encode()


def install_api_docs(app: FastAPI, openapi_url: str) -> None:
    """Serve Swagger UI for `app` at `/docs` and its files under `/docs/assets/` (none in the API document)."""
    page = docs_page(app.title, openapi_url)

    async def api_docs() -> Response:
        """Swagger UI for this service's API."""
        return Response(page, media_type="text/html; charset=utf-8", headers=dict(PAGE_HEADERS))

    async def api_docs_asset(name: str, request: Request) -> Response:
        """A file of the API docs page, cached for good when asked for by its version."""
        asset = docs_assets().get(name)
        if asset is None:
            raise NotFoundError(f"no docs file {name!r}")
        return asset_response(asset, request)

    app.add_api_route(DOCS_PATH, api_docs, methods=["GET"], include_in_schema=False)
    app.add_api_route(ASSETS_PATH + "{name}", api_docs_asset, methods=["GET"], include_in_schema=False)
