"""The quick starts of the docs run as written against running services, and print what the docs show.

A page marks the shell blocks a reader runs with `<!-- docs-test: run -->` just above the fence, and the output
it promises with `<!-- docs-test: output -->` above the fence that follows. A block marked `poll` instead of `run`
reads something that appears a moment later (a reading stored after its publication): it runs again until its
output shows, for a few seconds at most, so it must change nothing. A block marked `interrupt` runs until the
reader presses Ctrl-C (a simulator left running): it is stopped with SIGINT once its promised output has shown.
This test starts the services the page needs (cvat-sync, telemetry-ingest and vision-orchestrator on real ports,
with a database of their own, the run's Redis and MQTT broker, and the CVAT simulator), runs the marked blocks in
order in one bash session from the repository root (so variables such as `$TOKEN` carry from block to block, as
in a terminal), and checks each promised output: every line of it must appear in the block's standard output,
in order, with `…` standing for any text.

The addresses the docs use (`127.0.0.1:8001`, `:8002`, `:8003`, the embedded broker's `mqtt://127.0.0.1:18830`,
the simulator's `127.0.0.1:8080`) are replaced by those of the servers started here; nothing else is changed. The
block marked `<!-- docs-test: environment -->` (the variables the page gives `make run`) configures the services.
Not covered: `make run` itself (`tests/test_mirante_up.py` is), the pages in a browser (each service's
`test_pages.py`/`test_ops_pages.py` are), and blocks not marked `run` (commands for other machines, deployment).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest
import pytest_asyncio
from fastapi import FastAPI

from mirante.devstack import StackUrls
from mirante.mqtt.connection import discard_session
from mirante.settings import DatabaseSettings, InfraSettings
from mirante.testing.browser import LiveServer
from mirante.testing.database import create_test_database, drop_test_database

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from scripts.simulators.cvat import CvatSimulator  # noqa: E402

pytestmark = pytest.mark.slow

MARK = re.compile(r"<!-- docs-test: (run|poll|interrupt|output|environment) -->")
RUNNABLE = ("run", "poll", "interrupt")
BLOCK_TIMEOUT_SECONDS = 90.0
POLL_SECONDS = 15.0
DOCS_ADDRESSES = {
    "cvat_sync": ("127.0.0.1:8001", "localhost:8001"),
    "telemetry_ingest": ("127.0.0.1:8002", "localhost:8002"),
    "vision_orchestrator": ("127.0.0.1:8003", "localhost:8003"),
}
DOCS_BROKER = "mqtt://127.0.0.1:18830"
DOCS_SIMULATOR = "http://127.0.0.1:8080"
SERVICE_ENV_PREFIXES = ("CVAT_SYNC_", "TELEMETRY_INGEST_", "VISION_ORCHESTRATOR_")
# Exit statuses of a program stopped with Ctrl-C: it handled the interrupt and ended cleanly, or died of it.
INTERRUPTED_STATUSES = (0, 128 + signal.SIGINT)


@dataclass(frozen=True)
class Block:
    """A marked fenced block of a page: `kind` is run, output or environment; `line` is its fence's line."""

    page: str
    line: int
    kind: str
    text: str


def marked_blocks(page: Path) -> list[Block]:
    lines = page.read_text().splitlines()
    blocks = []
    for index, line in enumerate(lines):
        mark = MARK.fullmatch(line.strip())
        if mark is None:
            continue
        fence = index + 1
        assert lines[fence].startswith("```"), f"{page.name}:{index + 1}: the mark must sit right above a fence"
        end = next(i for i in range(fence + 1, len(lines)) if lines[i].startswith("```"))
        blocks.append(Block(page.name, fence + 1, mark.group(1), "\n".join(lines[fence + 1 : end])))
    return blocks


def promised(expected: str, output: str) -> bool:
    """Every line of `expected` matches a line of `output`, in order; `…` stands for any text."""
    lines = iter(output.splitlines())
    for wanted in expected.splitlines():
        pattern = re.compile(".*?".join(re.escape(part) for part in wanted.split("…")))
        if not any(pattern.fullmatch(line) for line in lines):
            return False
    return True


def environment_of(block: Block) -> dict[str, str]:
    """The `NAME=value` assignments of a shell block."""
    tokens = shlex.split(block.text, comments=True)
    return dict(token.split("=", 1) for token in tokens if re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", token))


class Shell:
    """One bash session fed block by block, as a reader types them into a terminal."""

    def __init__(self, env: dict[str, str]) -> None:
        self._process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self.errors: list[str] = []
        assert self._process.stdout is not None and self._process.stderr is not None
        threading.Thread(target=self._pump, args=(self._process.stdout, self._lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self._process.stderr, self.errors.append), daemon=True).start()

    @staticmethod
    def _pump(stream: IO[str], sink: Callable[[str], object]) -> None:
        for line in iter(stream.readline, ""):
            sink(line.rstrip("\n"))

    def run(self, script: str) -> tuple[int, str]:
        """Run `script` (its stdin is /dev/null, so nothing it starts can read the next blocks) and return its
        last command's exit status and its standard output."""
        marker = f"docs-test-{uuid.uuid4().hex}"
        assert self._process.stdin is not None
        # The marker starts on a line of its own even when the output does not end with a newline (curl's).
        self._process.stdin.write(f"{{\n{script}\n}} < /dev/null\nprintf '\\n{marker} %s\\n' $?\n")
        self._process.stdin.flush()
        output: list[str] = []
        deadline = time.monotonic() + BLOCK_TIMEOUT_SECONDS
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no end after {BLOCK_TIMEOUT_SECONDS:.0f} s; output so far:\n{output}") from None
            if line.startswith(marker):
                return int(line.split()[1]), "\n".join(output)
            output.append(line)

    def run_until(self, script: str, expected: str) -> tuple[int, str]:
        """Run `script` as a job of its own (job control on, so SIGINT reaches it as a terminal's Ctrl-C would),
        stop it with SIGINT once its output holds `expected` (or after the block timeout), and return its exit
        status and standard output. Variables it sets stay in its job, as in a terminal's background job."""
        marker = f"docs-test-{uuid.uuid4().hex}"
        assert self._process.stdin is not None
        self._process.stdin.write(
            f"set -m\n{{\n{script}\n}} < /dev/null &\nprintf '\\n{marker}-job %s\\n' $!\n"
            f"wait $!\nprintf '\\n{marker} %s\\n' $?\nset +m\n"
        )
        self._process.stdin.flush()
        output: list[str] = []
        job: int | None = None
        interrupted_at: float | None = None
        deadline = time.monotonic() + BLOCK_TIMEOUT_SECONDS
        while True:
            now = time.monotonic()
            if job is not None and interrupted_at is None and (promised(expected, "\n".join(output)) or now > deadline):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(job, signal.SIGINT)
                interrupted_at = now
            if interrupted_at is not None and now > interrupted_at + BLOCK_TIMEOUT_SECONDS:
                raise AssertionError(f"still running {BLOCK_TIMEOUT_SECONDS:.0f} s after Ctrl-C; output:\n{output}")
            try:
                line = self._lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line.startswith(f"{marker}-job "):
                job = int(line.split()[1])
            elif line.startswith(f"{marker} "):
                return int(line.split()[1]), "\n".join(output)
            else:
                output.append(line)

    def close(self) -> None:
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, 9)
        self._process.wait(timeout=10)


def run_page(page: Path, shell: Shell, substitute: dict[str, str]) -> None:
    blocks = [block for block in marked_blocks(page) if block.kind != "environment"]
    assert any(block.kind in RUNNABLE for block in blocks), f"{page.name} marks no block to run"
    for index, block in enumerate(blocks):
        if block.kind not in RUNNABLE:
            continue
        script = block.text
        for shown, actual in substitute.items():
            script = script.replace(shown, actual)
        following = blocks[index + 1] if index + 1 < len(blocks) else None
        expected = following.text if following is not None and following.kind == "output" else None
        where = f"{block.page}:{block.line}"
        poll_until = time.monotonic() + (POLL_SECONDS if block.kind == "poll" else 0.0)
        if block.kind == "interrupt":
            assert expected is not None, f"{where}: a block stopped with Ctrl-C needs the output it waits for"
            status, output = shell.run_until(script, expected)
            status = 0 if status in INTERRUPTED_STATUSES else status
        else:
            while True:
                status, output = shell.run(script)
                if expected is None or promised(expected, output) or time.monotonic() > poll_until:
                    break
                time.sleep(0.5)
        stderr = "\n".join(shell.errors[-30:])
        assert status == 0, f"{where}: exit status {status}\nstdout:\n{output}\nstderr:\n{stderr}"
        if expected is not None:
            assert promised(expected, output), f"{where}: printed\n{output}\ninstead of\n{expected}\nstderr:\n{stderr}"


# -- the services -------------------------------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def page_database(mirante_urls: StackUrls, migrated_template: str) -> AsyncIterator[str]:
    """A database of the page's own, migrated: ids the page shows (run 1, log 1) start from 1."""
    url = await create_test_database(mirante_urls.database_url, prefix="docs_quickstart", template=migrated_template)
    try:
        yield url
    finally:
        await drop_test_database(mirante_urls.database_url, url)


@pytest.fixture
def infra(infra_settings: InfraSettings, page_database: str) -> InfraSettings:
    return infra_settings.model_copy(
        update={
            "database": DatabaseSettings(url=page_database, pool_size=5, max_overflow=5),
            "mqtt": infra_settings.mqtt.model_copy(update={"session_expiry_seconds": 60}),
        }
    )


@pytest.fixture
def shell_env(mirante_urls: StackUrls, page_database: str, tmp_path: Path) -> dict[str, str]:
    """A terminal's environment with the suite's servers and none of the services' own settings."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(SERVICE_ENV_PREFIXES)}
    env.update(
        MIRANTE_DATABASE_URL=page_database,
        MIRANTE_REDIS_URL=mirante_urls.redis_url,
        MIRANTE_MQTT_URL=mirante_urls.mqtt_url,
        MIRANTE_DATA_DIR=str(tmp_path / "data"),
        MIRANTE_LOG_LEVEL="WARNING",
    )
    return env


@pytest.fixture
def shell(shell_env: dict[str, str]) -> Iterator[Shell]:
    session = Shell(shell_env)
    try:
        yield session
    finally:
        session.close()


def addresses(service: str, url: str) -> dict[str, str]:
    host_port = url.removeprefix("http://")
    return dict.fromkeys(DOCS_ADDRESSES[service], host_port)


async def wait_for_subscriber(app: FastAPI) -> None:
    """Readings published before the ingest worker subscribed would be lost: wait for its connection."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        runner = getattr(app.state, "mqtt_ingest_runner", None)
        if runner is not None and runner.connected.is_set():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("telemetry-ingest's MQTT subscriber did not connect")


# -- the pages ----------------------------------------------------------------------------------------------


async def test_telemetry_ingest_quick_start(infra: InfraSettings, mirante_urls: StackUrls, shell: Shell) -> None:
    from telemetry_ingest.config import Settings
    from telemetry_ingest.main import create_app

    client_id = f"docs-quickstart-{uuid.uuid4().hex[:10]}"
    app = create_app(Settings(infra=infra, mqtt_client_id=client_id, retention_enabled=False))
    try:
        async with LiveServer(app, name="telemetry-ingest") as server:
            await wait_for_subscriber(app)
            substitute = {DOCS_BROKER: mirante_urls.mqtt_url, **addresses("telemetry_ingest", server.url)}
            await asyncio.to_thread(run_page, ROOT / "docs" / "telemetry-ingest.md", shell, substitute)
    finally:
        await discard_session(mirante_urls.mqtt_url, client_id, protocol=infra.mqtt.protocol)


async def test_cvat_sync_without_a_cvat(infra: InfraSettings, shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    from cvat_sync.config import Settings
    from cvat_sync.main import create_app

    page = ROOT / "docs" / "cvat-sync.md"
    (environment,) = [block for block in marked_blocks(page) if block.kind == "environment"]
    with CvatSimulator(500) as simulator:
        for name, value in environment_of(environment).items():
            monkeypatch.setenv(name, value.replace(DOCS_SIMULATOR, simulator.url))
        app = create_app(Settings(infra=infra))
        async with LiveServer(app, name="cvat-sync") as server:
            substitute = {DOCS_SIMULATOR: simulator.url, **addresses("cvat_sync", server.url)}
            await asyncio.to_thread(run_page, page, shell, substitute)


async def test_vision_machines_quick_start(infra: InfraSettings, shell: Shell) -> None:
    from vision_orchestrator.config import Settings
    from vision_orchestrator.main import create_app

    settings = Settings(infra=infra)
    app = create_app(settings)
    server = LiveServer(app, name="vision-orchestrator")
    settings.public_url = server.url  # the callbacks the machines are given
    async with server:
        await asyncio.to_thread(
            run_page, ROOT / "docs" / "vision-machines.md", shell, addresses("vision_orchestrator", server.url)
        )


def test_the_marks_are_where_they_belong() -> None:
    """Each output follows a block that runs, and the cvat-sync page's environment names the settings used."""
    for page in (ROOT / "docs" / name for name in ("telemetry-ingest.md", "cvat-sync.md", "vision-machines.md")):
        blocks = marked_blocks(page)
        for previous, block in itertools.pairwise(blocks):
            if block.kind == "output":
                assert previous.kind in RUNNABLE, f"{block.page}:{block.line}: an output without a block run before it"
    (environment,) = [b for b in marked_blocks(ROOT / "docs" / "cvat-sync.md") if b.kind == "environment"]
    assert set(environment_of(environment)) == {
        "CVAT_SYNC_CVAT_URL",
        "CVAT_SYNC_CVAT_TOKEN",
        "CVAT_SYNC_WEBHOOK_SECRET",
    }
