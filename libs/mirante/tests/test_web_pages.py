"""The page kit: security headers, CSP, versioned and revalidated assets, refused names, the sign-in page's
`next` check; then, in Chromium, the shared scripts (sign-in, roles, query-string filters, CSV download,
errors) on a real server."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import re
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import pytest
import pytest_asyncio
from fastapi import APIRouter, FastAPI
from fastapi.responses import Response
from pydantic import BaseModel, Field

from mirante.auth.commands import create_user
from mirante.auth.principal import CurrentPrincipal
from mirante.auth.tokens import TokenCodec
from mirante.db import create_engine, create_sessionmaker
from mirante.settings import InfraSettings
from mirante.testing.apps import library_app
from mirante.testing.browser import LiveServer, PageOpener, sign_in
from mirante.web.errors import NotFoundError, error_response, install_error_handlers
from mirante.web.pages import (
    CONTENT_SECURITY_POLICY,
    IMMUTABLE_CACHE,
    LIBRARY_STATIC_DIR,
    PAGE_HEADERS,
    TOKEN_STORAGE_KEY,
    PageKit,
)
from mirante.web.redirects import safe_next

if TYPE_CHECKING:
    from playwright.async_api import Route

HOME_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Home · {{ title }}</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/mirante.css">
<script defer src="/static/mirante.js"></script>
<script defer src="/static/home.js"></script>
</head>
<body>
<header class="topbar">
  <a class="brand" href="{{ home }}">{{ title }}</a>
  <nav><a id="admin-link" href="/admin" data-min-role="admin" hidden>Admin</a>
  <a id="staff-link" href="/staff" data-staff-only hidden>Staff</a></nav>
  <div class="user"><span id="whoami"></span><button id="logout" type="button" hidden>Sign out</button></div>
</header>
<main>
  <div id="page-error" class="error" role="alert" hidden></div>
  <output id="query"></output>
  <button id="export" type="button">Export</button> <span id="saved"></span>
  <button id="fail" type="button">Fail</button>
</main>
</body>
</html>
"""
HOME_SCRIPT = """"use strict";
(async function () {
  const { api, initPage, readQuery, writeQuery, downloadCsv, showError } = window.Mirante;
  const FIELDS = {
    status: { choices: ["open", "closed"] },
    q: { maxLength: 10 },
    code: { pattern: /^[a-z]{3}$/ },
    page: { integer: true, min: 1, default: 1 },
  };
  const errorBox = document.getElementById("page-error");
  const values = readQuery(FIELDS);
  document.getElementById("query").textContent = JSON.stringify(values);
  writeQuery(values, FIELDS);
  try {
    await initPage();
  } catch (error) {
    showError(errorBox, error);
    return;
  }
  document.getElementById("export").addEventListener("click", async () => {
    try {
      document.getElementById("saved").textContent = await downloadCsv("/api/v1/test-pages/export", {
        body: { rows: 3 }, query: new URLSearchParams({ label: "row" }), filename: "fallback.csv",
      });
    } catch (error) {
      showError(errorBox, error);
    }
  });
  document.getElementById("fail").addEventListener("click", async () => {
    try {
      await api("/api/v1/test-pages/missing");
    } catch (error) {
      showError(errorBox, error);
    }
  });
})();
"""
ADMIN_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Admin · {{ title }}</title>
<link rel="stylesheet" href="/static/mirante.css">
<script defer src="/static/mirante.js"></script>
<script defer src="/static/admin.js"></script>
</head>
<body><main><div id="page-error" class="error" hidden></div><p id="admin-only" hidden>Settings</p></main></body>
</html>
"""
ADMIN_SCRIPT = """"use strict";
(async function () {
  const { initPage, showError } = window.Mirante;
  try {
    await initPage({ role: "admin", denied: "Admins only." });
    document.getElementById("admin-only").hidden = false;
  } catch (error) {
    showError(document.getElementById("page-error"), error);
  }
})();
"""

STATES_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>States · {{ title }}</title>
<link rel="stylesheet" href="/static/mirante.css">
<script defer src="/static/mirante.js"></script>
<script defer src="/static/states.js"></script>
</head>
<body><main>
{{> page-state }}
<div data-page-content><table><tbody id="rows"></tbody></table>{{> pager }}</div>
</main></body>
</html>
"""
STATES_SCRIPT = """"use strict";
(async function () {
  const { api, h, initPage, showProblem, hideProblem, showEmptyRow } = window.Mirante;
  async function load() {
    try {
      const list = await api("/api/v1/test-pages/flaky");
      hideProblem();
      showEmptyRow(document.getElementById("rows"), 3, {
        title: "Nothing yet", text: `${list.count} things so far.`, action: h("a", { href: "/" }, "Add one"),
      });
    } catch (error) {
      showProblem(error, { retry: load });
    }
  }
  try {
    await initPage();
  } catch (error) {
    showProblem(error, { retry: () => location.reload() });
    return;
  }
  await load();
})();
"""


def write_web_dir(root: Path, templates: Mapping[str, str], static: Mapping[str, str | bytes], **outside: str) -> Path:
    """A service's `web/` folder: `templates/`, `static/`, and files beside them that must never be served."""
    web = root / "web"
    (web / "templates").mkdir(parents=True)
    (web / "static").mkdir()
    for name, text in templates.items():
        target = web / "templates" / f"{name}.html"
        target.parent.mkdir(exist_ok=True)
        target.write_text(text, encoding="utf-8")
    for name, content in static.items():
        target = web / "static" / name
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    for name, text in outside.items():
        (web / name).write_text(text, encoding="utf-8")
    return web


def version_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()[:16]


def pages_app(kit: PageKit) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(kit.router)
    return app


@pytest.fixture
def web_dir(tmp_path: Path) -> Path:
    return write_web_dir(
        tmp_path,
        {"home": HOME_PAGE},
        {"home.js": HOME_SCRIPT, "notes.txt": "not an asset", ".hidden.js": "hidden"},
        **{"secret.js": "the service's own code", "config.py": "SECRET = 1"},
    )


@pytest_asyncio.fixture
async def client(web_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    kit = PageKit(web_dir, title="Ops & <Panel>", home="/ops")
    kit.add_page("/", "home", "The home page.")
    transport = httpx.ASGITransport(app=pages_app(kit))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


# -- pages ---------------------------------------------------------------------------------------------------


async def test_pages_carry_the_security_headers_and_a_strict_csp(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    for name, value in PAGE_HEADERS.items():
        assert page.headers[name] == value
    policy = {directive.split(" ", 1)[0]: directive for directive in CONTENT_SECURITY_POLICY.split("; ")}
    assert policy["script-src"] == "script-src 'self'" and policy["style-src"] == "style-src 'self'"
    assert policy["frame-ancestors"] == "frame-ancestors 'none'" and policy["object-src"] == "object-src 'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"


async def test_placeholders_are_filled_with_escaped_text(client: httpx.AsyncClient) -> None:
    page = (await client.get("/")).text
    assert "<title>Home · Ops &amp; &lt;Panel&gt;</title>" in page
    assert '<a class="brand" href="/ops">Ops &amp; &lt;Panel&gt;</a>' in page
    assert "{{" not in page and "<Panel>" not in page


async def test_asset_links_carry_the_version_of_their_content(client: httpx.AsyncClient, web_dir: Path) -> None:
    page = (await client.get("/")).text
    library_js = version_of((LIBRARY_STATIC_DIR / "mirante.js").read_bytes())
    service_js = version_of((web_dir / "static" / "home.js").read_bytes())
    assert f'src="/static/mirante.js?v={library_js}"' in page
    assert f'src="/static/home.js?v={service_js}"' in page
    assert re.search(r'href="/static/mirante\.css\?v=[0-9a-f]{16}"', page)
    assert re.search(r'href="/static/favicon\.svg\?v=[0-9a-f]{16}"', page)
    assert re.findall(r'(?:src|href)="/static/[^"?]+"', page) == [], "every asset link is versioned"


async def test_the_library_sign_in_page_names_the_service(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    assert page.status_code == 200 and page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "<title>Sign in · Ops &amp; &lt;Panel&gt;</title>" in page.text
    assert '<body data-home="/ops">' in page.text
    assert re.search(r'src="/static/login\.js\?v=[0-9a-f]{16}"', page.text)
    assert "<script>" not in page.text and "style=" not in page.text


# -- where the sign-in page may lead: WHATWG parsing, in Python, under Node and in Chromium -------------


FALLBACK = "FALLBACK"

NEXT_CASES: list[tuple[str, str]] = [
    ("/", "/"),
    ("/jobs?status=open#top", "/jobs?status=open#top"),
    ("/search?q=//x", "/search?q=//x"),
    ("/%09/evil.example", "/%09/evil.example"),
    ("/%2F%2Fevil.example", "/%2F%2Fevil.example"),
    ("  /jobs  ", "/jobs"),
    ("/jo\tbs", "/jobs"),
    ("//evil.example", FALLBACK),
    ("///evil.example", FALLBACK),
    ("/\\evil.example", FALLBACK),
    ("\\\\evil.example", FALLBACK),
    ("\\/evil.example", FALLBACK),
    ("/\t/evil.example", FALLBACK),
    ("/\r/evil.example", FALLBACK),
    ("/\n/evil.example", FALLBACK),
    ("\t//evil.example", FALLBACK),
    ("/\t\\evil.example", FALLBACK),
    ("\x00//evil.example", FALLBACK),
    ("/.//evil.example", FALLBACK),
    ("/a/..//evil.example", FALLBACK),
    ("javascript:alert(1)", FALLBACK),
    ("JaVaScRiPt:alert(1)", FALLBACK),
    (" javascript:alert(1)", FALLBACK),
    ("java\tscript:alert(1)", FALLBACK),
    ("data:text/html,hi", FALLBACK),
    ("http://evil.example/", FALLBACK),
    ("https:evil.example", FALLBACK),
    ("http:/evil.example", FALLBACK),
    ("evil.example", FALLBACK),
    ("", FALLBACK),
]

NODE_RUNNER = """
const vm = require("vm");
const fs = require("fs");
const context = { window: {}, location: { origin: "http://site.test" }, URL };
vm.createContext(context);
vm.runInContext(fs.readFileSync(process.argv[1], "utf8"), context);
const cases = JSON.parse(fs.readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(cases.map((value) => context.window.Mirante.safeNext(value, "FALLBACK"))));
"""


@pytest.mark.parametrize(("value", "expected"), NEXT_CASES)
def test_safe_next_reads_the_value_as_a_browser_does(value: str, expected: str) -> None:
    assert safe_next(value, fallback=FALLBACK) == expected


def test_safe_next_without_a_value_is_the_fallback() -> None:
    assert safe_next(None) == "/"
    assert safe_next(None, fallback="/home") == "/home"


def test_the_script_agrees_under_node() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = LIBRARY_STATIC_DIR / "mirante.js"

    completed = subprocess.run(
        [node, "-e", NODE_RUNNER, str(script)],
        input=json.dumps([value for value, _ in NEXT_CASES]),
        capture_output=True,
        text=True,
        check=True,
    )

    assert dict(zip([value for value, _ in NEXT_CASES], json.loads(completed.stdout), strict=True)) == dict(NEXT_CASES)


@pytest.mark.parametrize(
    "target", ["%2F%09%2Fevil.example", "%2F%5Cevil.example", "%2F%2Fevil.example", "javascript%3Aalert(1)"]
)
async def test_the_sign_in_page_drops_a_next_leading_off_the_site(client: httpx.AsyncClient, target: str) -> None:
    response = await client.get(f"/login?next={target}")

    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


async def test_the_sign_in_page_keeps_a_next_on_the_site(client: httpx.AsyncClient) -> None:
    response = await client.get("/login?next=%2Fjobs%3Fstatus%3Dopen")

    assert response.status_code == 200
    assert "login.js" in response.text


async def test_a_kit_without_the_sign_in_page_does_not_serve_it(web_dir: Path) -> None:
    kit = PageKit(web_dir, title="Ops", login_page=False)
    transport = httpx.ASGITransport(app=pages_app(kit))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.get("/login")).status_code == 404
        assert (await client.get("/static/login.js")).status_code == 200


async def test_pages_with_path_parameters_use_page_response(web_dir: Path) -> None:
    kit = PageKit(web_dir, title="Ops")

    @kit.router.get("/things/{thing_id}")
    async def thing_page(thing_id: int) -> Response:
        return kit.page_response("home")

    transport = httpx.ASGITransport(app=pages_app(kit))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        page = await client.get("/things/7")
        assert page.status_code == 200 and page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        bad = await client.get("/things/seven")
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"


# -- assets --------------------------------------------------------------------------------------------------


async def test_versioned_assets_are_kept_for_good_and_others_revalidated(client: httpx.AsyncClient) -> None:
    body = (LIBRARY_STATIC_DIR / "mirante.css").read_bytes()
    version = version_of(body)

    versioned = await client.get(f"/static/mirante.css?v={version}")
    assert versioned.status_code == 200 and versioned.content == body
    assert versioned.headers["cache-control"] == IMMUTABLE_CACHE
    assert versioned.headers["content-type"] == "text/css; charset=utf-8"
    assert versioned.headers["x-content-type-options"] == "nosniff"
    assert versioned.headers["etag"] == f'"{version}"'

    for url in ("/static/mirante.css", "/static/mirante.css?v=0123456789abcdef"):
        response = await client.get(url)
        assert response.status_code == 200 and response.headers["cache-control"] == "no-cache"

    script = await client.get("/static/home.js")
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert (await client.get("/static/favicon.svg")).headers["content-type"] == "image/svg+xml"


async def test_a_matching_etag_gets_304_without_a_body(client: httpx.AsyncClient) -> None:
    first = await client.get("/static/home.js")
    etag = first.headers["etag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}'):
        again = await client.get("/static/home.js", headers={"If-None-Match": header})
        assert again.status_code == 304, header
        assert again.content == b"" and again.headers["etag"] == etag
        assert again.headers["cache-control"] == "no-cache"
    changed = await client.get("/static/home.js", headers={"If-None-Match": '"0123456789abcdef"'})
    assert changed.status_code == 200 and changed.content == first.content


@pytest.mark.parametrize(
    "path",
    [
        "/static/nothing.js",
        "/static/notes.txt",
        "/static/.hidden.js",
        "/static/home.html",
        "/static/secret.js",
        "/static/..%2Fsecret.js",
        "/static/..%2Fconfig.py",
        "/static/%2e%2e%2fsecret.js",
        "/static/%2e%2e/secret.js",
        "/static/..%5Csecret.js",
        "/static/templates/login.html",
        "/static/pages.py",
        "/static/",
    ],
)
async def test_unknown_assets_and_paths_outside_the_folders_are_404(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_a_service_file_replaces_the_library_file_of_the_same_name(tmp_path: Path) -> None:
    icon = b'<svg xmlns="http://www.w3.org/2000/svg"/>'
    kit = PageKit(write_web_dir(tmp_path, {"home": HOME_PAGE}, {"home.js": "", "favicon.svg": icon}), title="Ops")
    transport = httpx.ASGITransport(app=pages_app(kit))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.get("/static/favicon.svg")).content == icon
    assert kit.asset_url("favicon.svg") == f"/static/favicon.svg?v={version_of(icon)}"


# -- partials ----------------------------------------------------------------------------------------------

PREVIOUS = "\N{SINGLE LEFT-POINTING ANGLE QUOTATION MARK} Previous"
NEXT = "Next \N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK}"


def test_partials_come_from_the_service_then_the_library(tmp_path: Path) -> None:
    page = '<body>\n{{#> topbar }}\n  <nav><a href="/">Home</a></nav>\n{{/topbar }}\n'
    page += "<main>\n  {{> pager }}\n  {{> note }}\n</main>"
    note = '<p class="{{ tone or "calm" }}">{{ title }}</p>\n'
    kit = PageKit(write_web_dir(tmp_path, {"home": page, "partials/note": note}, {}), title="Ops & co", home="/ops")
    body = kit.page_response("home").body.decode()
    assert body == (
        "<body>\n"
        '<header class="topbar">\n'
        '  <a class="brand" href="/ops">Mirante · Ops &amp; co</a>\n'
        '  <nav><a href="/">Home</a></nav>\n'
        '  <div class="user"><span id="whoami"></span>'
        '<button id="logout" type="button" hidden>Sign out</button></div>\n'
        "</header>\n"
        "<main>\n"
        '  <nav class="pager" aria-label="Pages">\n'
        '    <span id="page-summary"></span>\n'
        f'    <button id="page-prev" type="button" disabled>{PREVIOUS}</button>\n'
        '    <span id="page-number"></span>\n'
        f'    <button id="page-next" type="button" disabled>{NEXT}</button>\n'
        "  </nav>\n"
        '  <p class="calm">Ops &amp; co</p>\n'
        "</main>"
    )
    assert "partials" not in kit.bundle.pages and "pager" not in kit.bundle.pages


def test_partial_arguments_are_escaped_text_and_a_service_partial_replaces_the_library_one(tmp_path: Path) -> None:
    templates = {
        "home": '{{> pager previous="Newer" next="<Older>" }}|{{> topbar }}',
        "partials/topbar": "<header>{{ title }}</header>",
    }
    kit = PageKit(write_web_dir(tmp_path, templates, {}), title="Ops")
    body = kit.page_response("home").body.decode()
    assert ">Newer</button>" in body and ">&lt;Older&gt;</button>" in body
    assert body.endswith("|<header>Ops</header>")


def test_the_head_partial_holds_what_every_page_shares(tmp_path: Path) -> None:
    page = '{{#> head page="Jobs & co" }}\n<script defer src="/static/jobs.js"></script>\n{{/head }}\n<body></body>'
    kit = PageKit(write_web_dir(tmp_path, {"jobs": page}, {"jobs.js": ""}), title="Ops")
    body = kit.page_response("jobs").body.decode()
    library_js = version_of((LIBRARY_STATIC_DIR / "mirante.js").read_bytes())
    assert body.startswith('<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n')
    assert "<title>Jobs &amp; co · Ops</title>" in body
    shared = body.index(f'<script defer src="/static/mirante.js?v={library_js}"></script>')
    own = body.index(f'<script defer src="/static/jobs.js?v={version_of(b"")}"></script>')
    assert shared < own < body.index("</head>\n<body></body>"), "the page's own files load after the library's"
    assert re.search(r'<link rel="icon" href="/static/favicon\.svg\?v=[0-9a-f]{16}"', body)
    assert "{{" not in body


@pytest.mark.parametrize(
    ("page", "partials", "problem"),
    [
        ("{{> nowhere }}", {}, "missing partial 'nowhere'"),
        ("{{> loop }}", {"partials/loop": "{{> loop }}"}, "nests partials more than"),
        ("{{#> topbar }}<nav></nav>", {}, "without its closing tag"),
        ("{{> @partial-block }}", {}, "outside a block partial"),
        ("{{> pager label=unquoted }}", {}, "malformed partial tag"),
        ("{{> note }}", {"partials/note": "{{ tone }}"}, "unknown placeholder 'tone'"),
    ],
)
def test_a_page_with_a_bad_partial_is_refused(
    tmp_path: Path, page: str, partials: Mapping[str, str], problem: str
) -> None:
    kit = PageKit(write_web_dir(tmp_path, {"home": page, **partials}, {}), title="Ops")
    with pytest.raises(LookupError, match=re.escape(problem)):
        kit.page_response("home")


# -- mistakes a service can make ---------------------------------------------------------------------------


def test_a_page_naming_a_missing_asset_or_placeholder_is_refused(tmp_path: Path) -> None:
    missing_asset = PageKit(
        write_web_dir(tmp_path / "a", {"home": '<script defer src="/static/gone.js"></script>'}, {}), title="Ops"
    )
    with pytest.raises(LookupError, match=r"missing asset 'gone\.js'"):
        missing_asset.page_response("home")
    unknown_placeholder = PageKit(write_web_dir(tmp_path / "b", {"home": "<h1>{{ heading }}</h1>"}, {}), title="Ops")
    with pytest.raises(LookupError, match="unknown placeholder 'heading'"):
        unknown_placeholder.page_response("home")


def test_bad_arguments_are_refused(web_dir: Path) -> None:
    kit = PageKit(web_dir, title="Ops")
    with pytest.raises(LookupError, match="no page 'nothing'"):
        kit.page_response("nothing")
    with pytest.raises(LookupError, match="no static file"):
        kit.asset_url("nothing.js")
    with pytest.raises(ValueError, match="bad template name"):
        kit.add_page("/x", "../home", "A page.")
    for home in ("ops", "//elsewhere.example", "https://elsewhere.example/"):
        with pytest.raises(ValueError, match="home must be a path"):
            PageKit(web_dir, title="Ops", home=home)


def test_the_shared_script_agrees_with_the_library() -> None:
    script = (LIBRARY_STATIC_DIR / "mirante.js").read_text(encoding="utf-8")
    assert f'const TOKEN_KEY = "{TOKEN_STORAGE_KEY}";' in script
    assert "const ROLE_RANK = { viewer: 0, operator: 1, admin: 2 };" in script
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script


# -- the shared scripts in a browser -------------------------------------------------------------------------


PASSWORD = "pages-kit-pass-1234"


class ExportRequest(BaseModel):
    rows: Annotated[int, Field(ge=1, le=100)]


def pages_api_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1/test-pages")

    @router.post("/export")
    async def export(request: ExportRequest, principal: CurrentPrincipal, label: str = "item") -> Response:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["n", "label", "user"])
        writer.writerows([index, label, principal.name] for index in range(1, request.rows + 1))
        return Response(
            buffer.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="things-{request.rows}.csv"'},
        )

    flaky = {"calls": 0}

    @router.get("/flaky")
    async def flaky_list(principal: CurrentPrincipal) -> Any:
        flaky["calls"] += 1
        if flaky["calls"] == 1:
            return error_response(503, "things_not_configured", "THINGS_URL is not set", details=None)
        return {"count": 0, "results": []}

    @router.get("/missing")
    async def missing(principal: CurrentPrincipal) -> None:
        raise NotFoundError("nothing here")

    return router


@dataclass
class KitSite:
    url: str
    users: dict[str, str]
    tokens: dict[str, str]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def kit_site(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, infra_settings: InfraSettings
) -> AsyncIterator[KitSite]:
    """A library app serving a small PageKit, with a viewer, an admin and a staff operator."""
    web = write_web_dir(
        tmp_path_factory.mktemp("kit-site"),
        {"home": HOME_PAGE, "admin": ADMIN_PAGE, "states": STATES_PAGE},
        {"home.js": HOME_SCRIPT, "admin.js": ADMIN_SCRIPT, "states.js": STATES_SCRIPT},
    )
    kit = PageKit(web, title="Kit test")
    kit.add_page("/", "home", "Home.")
    kit.add_page("/admin", "admin", "Admins only.")
    kit.add_page("/states", "states", "Error and empty states.")
    codec = TokenCodec.from_settings(infra_settings.jwt)
    site = KitSite(url="", users={}, tokens={})
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            for key, role, staff in (
                ("viewer", "viewer", False),
                ("admin", "admin", False),
                ("staff", "operator", True),
            ):
                user = await create_user(
                    session, username=f"kit-{key}-{uuid.uuid4().hex[:8]}", password=PASSWORD, role=role, staff=staff
                )
                site.users[key] = user.username
                site.tokens[key] = codec.issue(
                    user.id, username=user.username, role=user.role, staff=user.is_staff
                ).token
    finally:
        await engine.dispose()
    async with LiveServer(library_app(infra_settings, routers=[kit.router, pages_api_router()])) as server:
        site.url = server.url
        yield site


@pytest.mark.browser
async def test_signing_in_returns_to_the_page_and_reveals_what_the_role_allows(
    kit_site: KitSite, open_page: PageOpener
) -> None:
    page = await open_page(kit_site.url)
    await page.goto("/?status=open")
    await page.wait_for_url(f"{kit_site.url}/login?next=%2F%3Fstatus%3Dopen")

    with pytest.raises(AssertionError, match="Wrong username or password"):
        await sign_in(page, kit_site.users["viewer"], "wrong-password")
    await sign_in(page, kit_site.users["viewer"], PASSWORD, next_path="/?status=open")
    assert page.url == f"{kit_site.url}/?status=open"
    # The page fills in who is signed in once its own `/auth/me` call answers: wait for it, then compare.
    await page.locator("#whoami").filter(has_text="viewer").wait_for()
    assert await page.locator("#whoami").text_content() == f"{kit_site.users['viewer']} · viewer"
    assert await page.locator("#admin-link").is_hidden() and await page.locator("#staff-link").is_hidden()

    await page.click("#logout")
    await page.wait_for_url(f"{kit_site.url}/login")
    assert await page.evaluate(f"sessionStorage.getItem({json.dumps(TOKEN_STORAGE_KEY)})") is None

    await sign_in(page, kit_site.users["staff"], PASSWORD)
    assert page.url == f"{kit_site.url}/"
    await page.locator("#whoami").filter(has_text="operator").wait_for()
    assert await page.locator("#staff-link").is_visible() and await page.locator("#admin-link").is_hidden()


@pytest.mark.browser
async def test_the_browser_agrees_with_the_next_check(kit_site: KitSite, open_page: PageOpener) -> None:
    page = await open_page(kit_site.url)
    await page.goto("/login")
    await page.wait_for_function("window.Mirante !== undefined")
    values = [value for value, _ in NEXT_CASES]

    seen = await page.evaluate("(values) => values.map((value) => window.Mirante.safeNext(value, 'FALLBACK'))", values)

    assert dict(zip(values, seen, strict=True)) == dict(NEXT_CASES)


@pytest.mark.browser
async def test_signing_in_never_lands_off_the_site(kit_site: KitSite, open_page: PageOpener) -> None:
    page = await open_page(kit_site.url)

    # Past the server's own check (which would drop this `next`): the form's script alone decides.
    async def the_bare_form(route: Route) -> None:
        await route.fulfill(response=await route.fetch(url=f"{kit_site.url}/login"))

    await page.route("**/login?next=*", the_bare_form)

    await sign_in(page, kit_site.users["viewer"], PASSWORD, next_path="/\t/evil.example")

    assert page.url == f"{kit_site.url}/"


@pytest.mark.browser
async def test_a_page_needing_a_role_shows_why_it_refuses(kit_site: KitSite, open_page: PageOpener) -> None:
    viewer = await open_page(kit_site.url, token=kit_site.tokens["viewer"])
    await viewer.goto("/admin")
    await viewer.locator("#page-error").filter(has_text="Admins only.").wait_for()
    assert await viewer.locator("#admin-only").is_hidden()

    admin = await open_page(kit_site.url, token=kit_site.tokens["admin"])
    await admin.goto("/admin")
    await admin.locator("#admin-only").wait_for()
    assert await admin.locator("#page-error").is_hidden()


@pytest.mark.browser
async def test_a_refused_token_sends_the_user_to_sign_in(kit_site: KitSite, open_page: PageOpener) -> None:
    page = await open_page(kit_site.url, token="not-a-token")
    await page.goto("/admin")
    await page.wait_for_url(f"{kit_site.url}/login?next=%2Fadmin")


@pytest.mark.browser
async def test_query_filters_keep_only_well_formed_values(kit_site: KitSite, open_page: PageOpener) -> None:
    page = await open_page(kit_site.url, token=kit_site.tokens["viewer"])
    await page.goto("/?status=bogus&q=%20%20hello%20world%20again&code=ABC&page=0&other=1")
    await page.locator("#whoami").filter(has_text="viewer").wait_for()
    shown = json.loads(await page.locator("#query").text_content() or "")
    assert shown == {"status": "", "q": "hello worl", "code": "", "page": 1}
    assert page.url == f"{kit_site.url}/?q=hello+worl"

    await page.goto("/?status=closed&code=abc&page=3")
    await page.locator("#whoami").filter(has_text="viewer").wait_for()
    shown = json.loads(await page.locator("#query").text_content() or "")
    assert shown == {"status": "closed", "q": "", "code": "abc", "page": 3}
    assert page.url == f"{kit_site.url}/?status=closed&code=abc&page=3"


@pytest.mark.browser
async def test_a_csv_export_is_posted_with_the_token_and_saved(kit_site: KitSite, open_page: PageOpener) -> None:
    page = await open_page(kit_site.url, token=kit_site.tokens["viewer"])
    await page.goto("/")
    await page.locator("#whoami").filter(has_text="viewer").wait_for()
    async with page.expect_download() as download_info:
        await page.click("#export")
    download: Any = await download_info.value
    assert download.suggested_filename == "things-3.csv"
    text = await asyncio.to_thread(Path(await download.path()).read_text, encoding="utf-8")
    user = kit_site.users["viewer"]
    assert text.splitlines() == ["n,label,user", f"1,row,{user}", f"2,row,{user}", f"3,row,{user}"]
    await page.locator("#saved").filter(has_text="things-3.csv").wait_for()


@pytest.mark.browser
async def test_api_errors_show_their_message(kit_site: KitSite, open_page: PageOpener) -> None:
    page = await open_page(kit_site.url, token=kit_site.tokens["viewer"])
    await page.goto("/")
    await page.locator("#whoami").filter(has_text="viewer").wait_for()
    await page.click("#fail")
    await page.locator("#page-error").filter(has_text="nothing here").wait_for()


@pytest.mark.browser
async def test_a_failed_load_replaces_the_content_and_an_empty_list_says_what_to_do(
    kit_site: KitSite, open_page: PageOpener
) -> None:
    expect = pytest.importorskip("playwright.async_api", reason="needs the playwright package").expect
    page = await open_page(kit_site.url, token=kit_site.tokens["viewer"])
    await page.goto("/states")
    state = page.locator("#page-state")
    await expect(state.locator(".page-state-title")).to_have_text("Not configured yet")
    await expect(state.locator(".page-state-message")).to_have_text("THINGS_URL is not set")
    await expect(page.locator("[data-page-content]")).to_be_hidden()

    await state.locator('[data-action="retry"]').click()
    await expect(state).to_be_hidden()
    await expect(page.locator("[data-page-content]")).to_be_visible()
    empty = page.locator("#rows td.empty .empty-state")
    await expect(empty.locator(".empty-state-title")).to_have_text("Nothing yet")
    await expect(empty.locator(".empty-state-text")).to_have_text("0 things so far.")
    await expect(empty.locator("a")).to_have_attribute("href", "/")
