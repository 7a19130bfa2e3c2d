"""Fixtures of the vision-orchestrator tests: the app, on the test's session.

Its dispatcher runs, as in production, but on its own engine: it cannot see what a test writes in its rolled-back
session, so it leaves the test's inspections alone (the dispatch tests run dispatchers on a database of their
own, and the end-to-end test serves the whole app on one).
"""

from __future__ import annotations

import httpx
import pytest_asyncio

from mirante.settings import InfraSettings
from mirante.testing.plugin import ClientFactory
from vision_orchestrator.config import Settings
from vision_orchestrator.main import create_app


@pytest_asyncio.fixture(loop_scope="session")
async def client(make_client: ClientFactory, infra_settings: InfraSettings) -> httpx.AsyncClient:
    return await make_client(create_app(Settings(infra=infra_settings)))
