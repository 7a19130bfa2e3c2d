"""Web pages of a service: HTML shells whose scripts read the REST API with the user's bearer token.

Pages carry no data and need no session: the scripts sign in through `/api/v1/auth/login`, keep the token in
`sessionStorage` and send it on every API call, so the API's own authorization applies unchanged.

A service keeps its pages in one folder (`web/`): `templates/*.html` and `static/` (CSS, JS, images). The
library adds its shared files (`mirante.css`, `mirante.js`, `login.js`, `favicon.svg`) and the sign-in page;
a service file of the same name replaces the library's. Every page gets the same security headers and a strict
Content Security Policy (no inline scripts or styles); asset links in templates get a content version, so
browsers keep an asset for good and fetch it again only when it changes.

    pages = PageKit(Path(__file__).parent, title="CVAT sync")
    router = pages.router
    pages.add_page("/", "jobs", "The job list.")

Markup shared between pages lives in partials (`templates/partials/<name>.html`, a service's replacing the
library's of the same name), resolved once when the pages are first read:

    {{> pager }}                            the partial, once
    {{> pager previous="Newer" }}           arguments: plain text the partial reads as `{{ previous }}`
    {{#> topbar }}<nav>…</nav>{{/topbar }}  a block: the partial puts the body at `{{> @partial-block }}`

and a placeholder may name a fallback for when it is not given: `{{ previous or "Previous" }}`.

Every page starts with the library's `head` partial: the doctype, the document head with its title
(`<page> · <title>`), icon, `mirante.css` and `mirante.js`, then the page's own files from the block:

    {{#> head page="Jobs" }}
    <link rel="stylesheet" href="/static/app.css">
    <script defer src="/static/jobs.js"></script>
    {{/head }}
    <body>…
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from mirante.web.errors import NotFoundError
from mirante.web.redirects import safe_next

LIBRARY_STATIC_DIR = Path(__file__).resolve().parent / "static"
LIBRARY_TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
STATIC_PREFIX = "/static/"
LOGIN_PATH = "/login"
TOKEN_STORAGE_KEY = "mirante.token"
"""The `sessionStorage` key under which `mirante.js` keeps the bearer token (tests sign in by setting it)."""

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

MEDIA_TYPES: Mapping[str, str] = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}
ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
ASSET_REFERENCE = re.compile(r'(?P<attr>(?:src|href)=")/static/(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)"')
PARTIALS_FOLDER = "partials"
MAX_PARTIAL_DEPTH = 8
_PARTIAL_NAME = r"[A-Za-z0-9][A-Za-z0-9_-]*"
_ARGUMENTS = r'(?:\s+[A-Za-z_]+="[^"]*")*'
TEMPLATE_TOKEN = re.compile(
    rf"\{{\{{#>\s*(?P<block>{_PARTIAL_NAME})(?P<block_arguments>{_ARGUMENTS})\s*\}}\}}"
    rf"(?P<body>.*?)\{{\{{/(?P=block)\s*\}}\}}"
    rf"|\{{\{{>\s*(?P<include>{_PARTIAL_NAME})(?P<include_arguments>{_ARGUMENTS})\s*\}}\}}"
    r"|(?P<slot>\{\{>\s*@partial-block\s*\}\})"
    r'|\{\{\s*(?P<placeholder>[A-Za-z_]+)\s*(?:or\s+"(?P<fallback>[^"]*)"\s*)?\}\}',
    re.DOTALL,
)
ARGUMENT = re.compile(r'(?P<name>[A-Za-z_]+)="(?P<value>[^"]*)"')
LEFT_OVER_TAG = re.compile(r"\{\{\s*[#>/]")


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
    """Every page and asset of a service, read once: they are small and only change with a release."""

    assets: Mapping[str, Asset]
    pages: Mapping[str, bytes]


def read_asset(path: Path) -> Asset:
    """The file at `path` (of a type in `MEDIA_TYPES`) held in memory with its content version."""
    body = path.read_bytes()
    return Asset(body=body, media_type=MEDIA_TYPES[path.suffix], version=hashlib.sha256(body).hexdigest()[:16])


def _asset_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {
        path.name: path
        for path in sorted(folder.iterdir())
        if path.is_file() and path.suffix in MEDIA_TYPES and ASSET_NAME.match(path.name)
    }


def _template_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {path.stem: path for path in sorted(folder.glob("*.html")) if TEMPLATE_NAME.match(path.stem)}


def _partial_files(folder: Path) -> dict[str, Path]:
    return _template_files(folder / PARTIALS_FOLDER)


@dataclass(frozen=True)
class _Scope:
    """What a piece of template sees: the placeholder values, the body of its enclosing block, where it is."""

    page: str
    values: Mapping[str, str]
    block_body: str | None
    depth: int


def _expand(source: str, scope: _Scope, partials: Mapping[str, str]) -> str:
    """`source` with its partials, blocks and placeholders filled in one pass (the result is not scanned again)."""

    def partial(match: re.Match[str], name: str, arguments: str, block_body: str | None) -> str:
        text = partials.get(name)
        if text is None:
            raise LookupError(f"page {scope.page!r} includes a missing partial {name!r}")
        if scope.depth >= MAX_PARTIAL_DEPTH:
            raise LookupError(f"page {scope.page!r} nests partials more than {MAX_PARTIAL_DEPTH} deep at {name!r}")
        values = {**scope.values, **{found["name"]: found["value"] for found in ARGUMENT.finditer(arguments)}}
        # A partial's lines follow the indentation of the tag that includes it, so pages read as written.
        text = text.replace("\n", "\n" + _indentation(match))
        return _expand(text, _Scope(scope.page, values, block_body, scope.depth + 1), partials)

    def substitute(match: re.Match[str]) -> str:
        if match["block"] is not None:
            body = match["body"].removeprefix("\n").removesuffix("\n")
            return partial(match, match["block"], match["block_arguments"], _expand(body, scope, partials))
        if match["include"] is not None:
            return partial(match, match["include"], match["include_arguments"], None)
        if match["slot"] is not None:
            if scope.block_body is None:
                raise LookupError(f"page {scope.page!r} uses {{{{> @partial-block }}}} outside a block partial")
            return scope.block_body
        key = match["placeholder"]
        value = scope.values.get(key)
        if not value and match["fallback"] is not None:
            value = match["fallback"]
        if value is None:
            raise LookupError(f"page {scope.page!r} uses an unknown placeholder {key!r}")
        return html.escape(value)

    return TEMPLATE_TOKEN.sub(substitute, source)


def _indentation(match: re.Match[str]) -> str:
    """The whitespace before `match` on its line, or nothing when text precedes it there."""
    line_start = match.string.rfind("\n", 0, match.start()) + 1
    before = match.string[line_start : match.start()]
    return before if before.isspace() else ""


def _render(
    source: str, name: str, values: Mapping[str, str], partials: Mapping[str, str], assets: Mapping[str, Asset]
) -> bytes:
    def version(match: re.Match[str]) -> str:
        asset = match["name"]
        if asset not in assets:
            raise LookupError(f"page {name!r} refers to a missing asset {asset!r}")
        return f'{match["attr"]}{STATIC_PREFIX}{asset}?v={assets[asset].version}"'

    expanded = _expand(source, _Scope(name, values, None, 0), partials)
    if LEFT_OVER_TAG.search(expanded):
        raise LookupError(f"page {name!r} has a malformed partial tag or a block without its closing tag")
    return ASSET_REFERENCE.sub(version, expanded).encode("utf-8")


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


class PageKit:
    """The pages of one service: its templates and static files plus the library's shared ones.

    `web_dir` holds `templates/` (one `<name>.html` per page) and `static/`. `title` names the service in the
    sign-in page (and in any template through `{{ title }}`); `home` is where the sign-in page goes when no
    `next` is given (`{{ home }}`). The kit's `router` serves `/static/{name}` and, unless `login_page` is
    false, the library's sign-in page at `/login`; the service adds its own pages to the same router.
    Files are read on first use and kept in memory.
    """

    def __init__(self, web_dir: Path | str, *, title: str, home: str = "/", login_page: bool = True) -> None:
        if not home.startswith("/") or home.startswith("//"):
            raise ValueError(f"home must be a path on this site, not {home!r}")
        self.web_dir = Path(web_dir).resolve()
        self.title = title
        self.home = home
        self.router = APIRouter(include_in_schema=False, tags=["pages"])
        self.router.add_api_route(STATIC_PREFIX + "{name}", self._static_asset, methods=["GET"])
        if login_page:
            self.router.add_api_route(LOGIN_PATH, self._login_page, methods=["GET"], name="page:login")

    @cached_property
    def bundle(self) -> WebBundle:
        """The pages (placeholders filled, asset links carrying content versions) and the assets they use.

        Raises LookupError when a template names an asset, a partial or a placeholder that does not exist.
        """
        asset_files = _asset_files(LIBRARY_STATIC_DIR) | _asset_files(self.web_dir / "static")
        assets = {name: read_asset(path) for name, path in asset_files.items()}
        templates = _template_files(LIBRARY_TEMPLATES_DIR) | _template_files(self.web_dir / "templates")
        partial_files = _partial_files(LIBRARY_TEMPLATES_DIR) | _partial_files(self.web_dir / "templates")
        # The file's last newline belongs to the file, not to the markup: the include tag's line keeps its own.
        partials = {name: path.read_text(encoding="utf-8").removesuffix("\n") for name, path in partial_files.items()}
        values = {"title": self.title, "home": self.home}
        pages = {
            name: _render(path.read_text(encoding="utf-8"), name, values, partials, assets)
            for name, path in templates.items()
        }
        return WebBundle(assets=assets, pages=pages)

    def asset_url(self, name: str) -> str:
        """The versioned URL of an asset, for links built outside templates."""
        asset = self.bundle.assets.get(name)
        if asset is None:
            raise LookupError(f"no static file {name!r}")
        return f"{STATIC_PREFIX}{name}?v={asset.version}"

    def page_response(self, name: str) -> Response:
        """The page `name` (a file of `templates/`) with the security headers every page carries."""
        body = self.bundle.pages.get(name)
        if body is None:
            raise LookupError(f"no page {name!r}")
        return Response(body, media_type="text/html; charset=utf-8", headers=dict(PAGE_HEADERS))

    def add_page(self, path: str, template: str, description: str) -> None:
        """Serve `templates/<template>.html` at `path` (GET); pages with path parameters use `page_response`."""
        if not TEMPLATE_NAME.match(template):
            raise ValueError(f"bad template name {template!r}")

        async def page() -> Response:
            return self.page_response(template)

        page.__doc__ = description
        self.router.add_api_route(path, page, methods=["GET"], name=f"page:{template}", description=description)

    async def _login_page(self, request: Request) -> Response:
        """The sign-in form; it returns to the page named by `next`, a path on this site.

        A `next` that would leave the site is dropped here (303 to the bare form), and the form's script checks
        it again before navigating.
        """
        target = request.query_params.get("next")
        if target is not None and not safe_next(target, fallback=""):
            return RedirectResponse(LOGIN_PATH, status_code=303, headers=dict(PAGE_HEADERS))
        return self.page_response("login")

    async def _static_asset(self, name: str, request: Request) -> Response:
        """A static file of the pages, with an ETag; cached for good when asked for by its version."""
        asset = self.bundle.assets.get(name) if ASSET_NAME.match(name) else None
        if asset is None:
            raise NotFoundError(f"no static file {name!r}")
        return asset_response(asset, request)


def asset_response(asset: Asset, request: Request) -> Response:
    """`asset` with its ETag (304 when the client holds it); cached for good when asked for by its version."""
    versioned = request.query_params.get("v") == asset.version
    headers = {
        "ETag": asset.etag,
        "Cache-Control": IMMUTABLE_CACHE if versioned else REVALIDATE_CACHE,
        "X-Content-Type-Options": "nosniff",
    }
    if asset.etag in _etags(request.headers.get("if-none-match", "")):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)
