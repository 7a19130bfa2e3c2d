"""Fixtures of the vision-orchestrator tests: the app, on the test's session.

Its dispatcher runs no passes: it works on its own engine and could not see what a test writes in its rolled-back
session (the dispatch tests run dispatchers on a database of their own).
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
    return await make_client(create_app(Settings(infra=infra_settings, dispatcher_enabled=False)))
