"""The service's web pages: HTML shells whose scripts read the REST API with the user's bearer token.

Pages carry no data and need no session: the scripts sign in through `/api/v1/auth/login`, keep the token in
`sessionStorage` and send it on every API call, so the API's own authorization applies unchanged.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.responses import Response

from mirante.web.errors import NotFoundError

WEB_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
STATIC_PREFIX = "/static/"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
# A versioned asset URL names exactly one content, so browsers may keep it for good; an unversioned one is
# revalidated with its ETag every time.
IMMUTABLE_CACHE = "public, max-age=31536000, immutable"
REVALIDATE_CACHE = "no-cache"

MEDIA_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ASSET_REFERENCE = re.compile(r'(?P<attr>(?:src|href)=")/static/(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)"')

router = APIRouter(include_in_schema=False, tags=["pages"])


@dataclass(frozen=True)
class Asset:
    """A static file held in memory with its validators."""

    body: bytes
    media_type: str
    version: str

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


@dataclass(frozen=True)
class WebBundle:
    """Every page and asset of the package, read once: they are small and only change with a release."""

    assets: Mapping[str, Asset]
    pages: Mapping[str, bytes]


def _asset(path: Path) -> Asset:
    body = path.read_bytes()
    return Asset(body=body, media_type=MEDIA_TYPES[path.suffix], version=hashlib.sha256(body).hexdigest()[:16])


def _versioned(html: str, assets: Mapping[str, Asset]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in assets:
            raise LookupError(f"page refers to a missing asset {name!r}")
        return f'{match["attr"]}{STATIC_PREFIX}{name}?v={assets[name].version}"'

    return ASSET_REFERENCE.sub(replace, html)


@lru_cache(maxsize=1)
def web_bundle() -> WebBundle:
    """The pages (asset links carrying content versions) and the assets they use."""
    assets = {
        path.name: _asset(path)
        for path in sorted(STATIC_DIR.iterdir())
        if path.is_file() and path.suffix in MEDIA_TYPES and ASSET_NAME.match(path.name)
    }
    pages = {
        path.stem: _versioned(path.read_text(encoding="utf-8"), assets).encode("utf-8")
        for path in sorted(TEMPLATES_DIR.glob("*.html"))
    }
    return WebBundle(assets=assets, pages=pages)


def page_response(name: str) -> Response:
    """The page `name` (a file of `templates/`) with the security headers every page carries."""
    body = web_bundle().pages.get(name)
    if body is None:
        raise LookupError(f"no page {name!r}")
    return Response(body, media_type="text/html; charset=utf-8", headers=dict(PAGE_HEADERS))


@router.get("/")
async def jobs_page() -> Response:
    """The job list with stat cards, filters, CSV export and the sync button."""
    return page_response("jobs")


@router.get("/login")
async def login_page() -> Response:
    """The sign-in form; it returns to the page named by `next`."""
    return page_response("login")


@router.get("/jobs/{job_id}")
async def job_page(job_id: Annotated[int, PathParam(ge=1)]) -> Response:
    """One job: fields, annotation counts, history, raw payload and its link in CVAT."""
    return page_response("job")


@router.get("/webhook-logs")
async def webhook_logs_page() -> Response:
    """The webhook audit log (the API answers admins only)."""
    return page_response("webhook-logs")


@router.get("/static/{name}")
async def static_asset(name: str, request: Request) -> Response:
    """A CSS, JS or SVG file of the pages, with an ETag; cached for good when asked for by its version."""
    asset = web_bundle().assets.get(name) if ASSET_NAME.match(name) else None
    if asset is None:
        raise NotFoundError(f"no static file {name!r}")
    versioned = request.query_params.get("v") == asset.version
    headers = {
        "ETag": asset.etag,
        "Cache-Control": IMMUTABLE_CACHE if versioned else REVALIDATE_CACHE,
        "X-Content-Type-Options": "nosniff",
    }
    if asset.etag in _etags(request.headers.get("if-none-match", "")):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}
