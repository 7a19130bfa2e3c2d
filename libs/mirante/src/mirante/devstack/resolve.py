"""Finding the servers for any command: environment first, then a running `mirante up` stack."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from mirante.devstack.errors import StackNotRunningError
from mirante.devstack.probes import server_answers
from mirante.devstack.stack import EmbeddedStack
from mirante.devstack.state import live_state
from mirante.devstack.urls import COMPONENTS, Component, ResolvedUrls, StackUrls, env_urls, redact
from mirante.settings import CoreSettings

logger = logging.getLogger(__name__)


def default_data_dir() -> Path:
    """`MIRANTE_DATA_DIR` (default `.mirante`)."""
    return CoreSettings().data_dir


def resolve_urls(
    data_dir: Path | None = None,
    *,
    components: Iterable[Component] = COMPONENTS,
    probe_timeout: float = 1.0,
) -> ResolvedUrls:
    """URLs for `components`: each from its `MIRANTE_*_URL`, else from a live `<data_dir>/stack.json`
    (owner alive and that server answering), else None. Nothing is started."""
    wanted = set(components)
    unknown = wanted - set(COMPONENTS)
    if unknown:
        raise ValueError(f"unknown components {sorted(unknown)}; expected some of {COMPONENTS}")
    env = env_urls()
    found: dict[Component, str | None] = {c: env.get(c) if c in wanted else None for c in COMPONENTS}
    if any(found[c] is None for c in wanted):
        state = live_state(Path(data_dir) if data_dir is not None else default_data_dir())
        for component in wanted:
            if found[component] is None and state is not None:
                url = state.urls.get(component)
                if server_answers(component, url, probe_timeout):
                    found[component] = url
                else:
                    logger.warning("the running stack's %s at %s does not answer", component, redact(url))
    return ResolvedUrls(database_url=found["database"], redis_url=found["redis"], mqtt_url=found["mqtt"])


def resolve_database_url(data_dir: Path | None = None) -> str:
    """`MIRANTE_DATABASE_URL`, else the database of a running `mirante up`; otherwise a clear error."""
    url = resolve_urls(data_dir, components=("database",)).database_url
    if url is None:
        folder = Path(data_dir) if data_dir is not None else default_data_dir()
        raise StackNotRunningError(
            f"no database: set MIRANTE_DATABASE_URL, or run `mirante up` (embedded servers in {folder})"
        )
    return url


@contextmanager
def ensure_stack(data_dir: Path | None = None) -> Iterator[StackUrls]:
    """Servers for a one-off command: configured or running ones when they exist, otherwise embedded
    servers started for the duration of the block (their data stays in `data_dir` for a later
    `mirante up`)."""
    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    resolved = resolve_urls(folder)
    if not resolved.missing:
        yield resolved.complete()
        return
    with EmbeddedStack(folder, urls=resolved) as urls:
        yield urls


@asynccontextmanager
async def aensure_stack(data_dir: Path | None = None) -> AsyncIterator[StackUrls]:
    """`ensure_stack` for async code: the blocking start and stop run in a thread."""
    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    resolved = resolve_urls(folder)
    if not resolved.missing:
        yield resolved.complete()
        return
    async with EmbeddedStack(folder, urls=resolved) as urls:
        yield urls
