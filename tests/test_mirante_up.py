"""`mirante up` (what `make run` runs) brings up all five services, ready, and stops them all on Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mirante.devstack import StackUrls
from mirante.service import discover_services
from mirante.testing.mqtt import MqttSessions

pytestmark = pytest.mark.slow

START_TIMEOUT_SECONDS = 180


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Output:
    """Collects a child's output on a thread so the test can wait for a line without blocking on the pipe."""

    def __init__(self, stream: object) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
            self.lines.append(raw.decode(errors="replace").rstrip())

    def wait_for(self, text: str, process: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if process.poll() is not None:
                break
            time.sleep(0.2)
        tail = "\n".join(self.lines[-40:])
        raise AssertionError(f"{text!r} not printed (exit code {process.poll()}); output:\n{tail}")


@pytest.fixture
def suite_env(
    mirante_urls: StackUrls, database_url: str, tmp_path: Path, mqtt_sessions: MqttSessions
) -> Iterator[dict[str, str]]:
    env = dict(os.environ)
    env.update(
        MIRANTE_DATABASE_URL=database_url,
        MIRANTE_REDIS_URL=mirante_urls.redis_url,
        MIRANTE_MQTT_URL=mirante_urls.mqtt_url,
        MIRANTE_DATA_DIR=str(tmp_path / "data"),
        MIRANTE_LOG_LEVEL="WARNING",
        MIRANTE_SMTP_SINK_PORT=str(_free_port()),
    )
    env.pop("MIRANTE_SMTP_HOST", None)
    for spec in discover_services():
        env[f"{spec.env_prefix}PORT"] = str(_free_port())
        if spec.uses_mqtt:
            # Not the default `<service>-<hostname>`: that session would outlive the test on the shared broker,
            # queueing every message published to it, and be taken over by any other run on this host.
            env[f"{spec.env_prefix}MQTT_CLIENT_ID"] = mqtt_sessions.new(f"{spec.name}-up-test")
    yield env


def test_up_starts_every_service_and_ctrl_c_stops_them(suite_env: dict[str, str]) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "mirante", "up"],
        env=suite_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        # Its own process group, so a failed test can remove the supervisor and every service it started.
        start_new_session=True,
    )
    output = _Output(process.stdout)
    ports = [int(suite_env[f"{spec.env_prefix}PORT"]) for spec in discover_services()]
    try:
        output.wait_for("Mirante is up", process, START_TIMEOUT_SECONDS)
        for spec, port in zip(discover_services(), ports, strict=True):
            assert any(f"http://127.0.0.1:{port}" in line and spec.name in line for line in output.lines)
            ready = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5)
            assert ready.status_code == 200, f"{spec.name}: {ready.text}"
            assert ready.json()["status"] == "ready"
        sink = f"smtp://127.0.0.1:{suite_env['MIRANTE_SMTP_SINK_PORT']}"
        assert any("smtp (mail sink)" in line and sink in line for line in output.lines), output.lines
    finally:
        # Ctrl-C as `make run` delivers it: the terminal signals the whole process group, then `uv run` forwards
        # the signal to its child, which gets it a second time while it is stopping.
        os.killpg(process.pid, signal.SIGINT)
        time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        try:
            exit_code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
    assert exit_code == 0, "\n".join(output.lines[-40:])
    assert not any("Traceback" in line for line in output.lines), "\n".join(output.lines[-40:])
    for port in ports:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)


def test_up_refuses_an_unknown_service(suite_env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mirante", "up", "no-such-service"],
        env=suite_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "unknown service 'no-such-service'" in result.stderr
    assert "cvat-sync" in result.stderr
    assert "Traceback" not in result.stderr


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_up_restarts_a_service_that_died_and_keeps_the_others(suite_env: dict[str, str]) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "mirante", "up", "telemetry-ingest", "recording-storage"],
        env=suite_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    output = _Output(process.stdout)
    ingest = f"http://127.0.0.1:{suite_env['TELEMETRY_INGEST_PORT']}"
    storage = f"http://127.0.0.1:{suite_env['RECORDING_STORAGE_PORT']}"
    try:
        output.wait_for("Mirante is up", process, START_TIMEOUT_SECONDS)
        before = _children(process.pid)
        assert len(before) == 2
        victim = next(pid for pid in before if "telemetry-ingest" in Path(f"/proc/{pid}/cmdline").read_text())
        storage_pid = next(pid for pid in before if pid != victim)
        os.kill(victim, signal.SIGKILL)
        output.wait_for("telemetry-ingest exited with code -9", process, 30)
        output.wait_for("telemetry-ingest restarted", process, 60)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{ingest}/ready", timeout=5).status_code == 200:
                    break
            time.sleep(0.5)
        assert httpx.get(f"{ingest}/ready", timeout=5).status_code == 200
        assert httpx.get(f"{storage}/ready", timeout=5).status_code == 200
        after = _children(process.pid)
        assert victim not in after
        assert storage_pid in after
        assert len(after) == 2
    finally:
        process.send_signal(signal.SIGINT)
        try:
            exit_code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
    assert exit_code == 0, "\n".join(output.lines[-40:])
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{ingest}/health", timeout=2)
