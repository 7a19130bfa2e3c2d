"""`/docs`: Swagger UI from the service's own files (no CDN), under the pages' CSP, usable with no internet."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
import pytest_asyncio
from playwright.async_api import Route

from mirante.settings import InfraSettings
from mirante.testing.apps import library_app
from mirante.testing.browser import AppServer, PageOpener
from mirante.testing.plugin import ClientFactory
from mirante.web.apidocs import docs_assets
from mirante.web.pages import CONTENT_SECURITY_POLICY, IMMUTABLE_CACHE, REVALIDATE_CACHE

LOCAL_HOSTS = {"127.0.0.1"}


@pytest_asyncio.fixture(loop_scope="session")
async def client(infra_settings: InfraSettings, make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client(library_app(infra_settings))


async def test_docs_page_links_only_to_its_own_versioned_files(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")

    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert page.headers["x-frame-options"] == "DENY"
    links = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sorted(links) == sorted(
        f"/docs/assets/{name}?v={asset.version}".replace("&", "&amp;") for name, asset in docs_assets().items()
    )
    assert "<script>" not in page.text and "style=" not in page.text
    assert 'data-openapi-url="/openapi.json"' in page.text
    for link in links:
        asset = await client.get(link)
        assert asset.status_code == 200, link
        assert asset.headers["cache-control"] == IMMUTABLE_CACHE
    unversioned = await client.get("/docs/assets/swagger-ui-bundle.js")
    assert unversioned.headers["cache-control"] == REVALIDATE_CACHE
    assert unversioned.headers["content-type"] == "text/javascript; charset=utf-8"
    again = await client.get("/docs/assets/swagger-ui.css", headers={"If-None-Match": unversioned.headers["etag"]})
    assert again.status_code == 200  # another file's ETag does not match
    held = await client.get(
        "/docs/assets/swagger-ui.css", headers={"If-None-Match": docs_assets()["swagger-ui.css"].etag}
    )
    assert held.status_code == 304


async def test_only_the_docs_files_are_served_and_redoc_is_gone(client: httpx.AsyncClient) -> None:
    for path in ("/docs/assets/index.html", "/docs/assets/..%2Fswagger-ui.js", "/redoc", "/docs/oauth2-redirect"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"


async def test_docs_render_the_operations_offline_under_the_csp(
    infra_settings: InfraSettings, serve_app: AppServer, open_page: PageOpener
) -> None:
    url = await serve_app(library_app(infra_settings))
    page = await open_page(url)
    leaving: list[str] = []

    async def offline(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            await route.continue_()
        else:
            leaving.append(route.request.url)
            await route.abort("internetdisconnected")

    await page.context.route("**/*", offline)
    await page.goto("/docs")

    operations = page.locator(".opblock-summary-path")
    await operations.filter(has_text="/api/v1/auth/me").first.wait_for()
    paths = set(await operations.all_text_contents())
    assert {"/api/v1/auth/login", "/api/v1/auth/me", "/api/v1/users", "/health"} <= {p.strip() for p in paths}
    await page.locator(".info .title").filter(has_text="Mirante library test app").wait_for()
    await page.locator("button.authorize").wait_for()

    health = page.locator(".opblock").filter(
        has=page.locator(".opblock-summary-path", has_text=re.compile("^/health$"))
    )
    await health.locator(".opblock-summary").first.click()
    await health.locator("button.try-out__btn").click()
    await health.locator("button.execute").click()
    await health.locator(".live-responses-table .response-col_status").filter(has_text="200").first.wait_for()
    assert leaving == []
