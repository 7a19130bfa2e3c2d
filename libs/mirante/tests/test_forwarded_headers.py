"""Client addresses: uvicorn believes `X-Forwarded-For` only from the proxies in `MIRANTE_FORWARDED_ALLOW_IPS`."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn

from mirante.settings import CoreSettings
from mirante.supervisor import proxy_options

FORGED = "203.0.113.9"


async def client_address(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app answering with the client address uvicorn settled on."""
    if scope["type"] != "http":
        return
    body = json.dumps({"client": scope["client"][0]}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@asynccontextmanager
async def running(core: CoreSettings) -> AsyncIterator[str]:
    """A real uvicorn server on 127.0.0.1 with the options `mirante serve` gives it."""
    port = free_port()
    config = uvicorn.Config(
        client_address, host="127.0.0.1", port=port, log_config=None, lifespan="off", **proxy_options(core)
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def seen_address(base_url: str) -> str:
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.get("/", headers={"X-Forwarded-For": FORGED})
    address: str = response.json()["client"]
    return address


async def test_by_default_a_forwarded_header_from_localhost_is_not_believed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # uvicorn would otherwise read this variable, and its own default trusts 127.0.0.1.
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")

    async with running(CoreSettings()) as url:
        assert await seen_address(url) == "127.0.0.1"


async def test_a_configured_proxy_is_believed() -> None:
    async with running(CoreSettings(forwarded_allow_ips="127.0.0.1")) as url:
        assert await seen_address(url) == FORGED


async def test_a_proxy_elsewhere_does_not_make_localhost_trusted() -> None:
    async with running(CoreSettings(forwarded_allow_ips="10.0.0.0/8")) as url:
        assert await seen_address(url) == "127.0.0.1"


def test_the_options_follow_the_setting() -> None:
    assert proxy_options(CoreSettings()) == {"proxy_headers": False, "forwarded_allow_ips": ""}
    assert proxy_options(CoreSettings(forwarded_allow_ips=" 10.0.0.1,10.0.0.2 ")) == {
        "proxy_headers": True,
        "forwarded_allow_ips": "10.0.0.1,10.0.0.2",
    }
