"""Running services: one in the foreground (`mirante serve`), or the whole suite (`mirante up`)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any

import httpx
import uvicorn

from mirante.devstack import EmbeddedStack, StackUrls
from mirante.devstack.mail_sink import MailSink, start_mail_sink
from mirante.migrations import upgrade_all
from mirante.restarts import RestartBackoff
from mirante.service import ServiceSpec, discover_services, get_service
from mirante.settings import CoreSettings, SettingsError, SmtpSettings

logger = logging.getLogger(__name__)

# Five services migrating and importing at once on a small, busy machine can take a minute; give them two.
READY_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 15.0


def proxy_options(core: CoreSettings) -> dict[str, Any]:
    """uvicorn's forwarded-header options: believe `X-Forwarded-*` only from `MIRANTE_FORWARDED_ALLOW_IPS`.

    uvicorn's own default trusts 127.0.0.1, which lets any local process (or a sidecar) choose its client
    address; explicit options keep its `FORWARDED_ALLOW_IPS` variable from widening the trust either.
    """
    trusted = core.forwarded_allow_ips.strip()
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": trusted}


def serve(spec: ServiceSpec, host: str | None = None, port: int | None = None, workers: int | None = None) -> None:
    """Run `spec` under uvicorn until interrupted; arguments override the service's settings."""
    settings = spec.settings_factory()
    uvicorn.run(
        spec.factory_path,
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers or settings.workers,
        log_config=None,
        access_log=False,
        server_header=False,
        **proxy_options(settings.infra.core),
    )


@dataclass
class RunningService:
    spec: ServiceSpec
    url: str
    process: subprocess.Popen[bytes]


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _child_env(stack: EmbeddedStack, sink: MailSink | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["MIRANTE_DATABASE_URL"] = stack.urls.database_url
    env["MIRANTE_REDIS_URL"] = stack.urls.redis_url
    env["MIRANTE_MQTT_URL"] = stack.urls.mqtt_url
    if stack.mqtt_protocol is not None:
        env["MIRANTE_MQTT_PROTOCOL"] = stack.mqtt_protocol
    if sink is not None:
        env.update(sink.child_env())
    return env


def _mail_sink(core: CoreSettings) -> MailSink | None:
    """The local mail sink, unless a mail server is configured (`MIRANTE_SMTP_HOST`)."""
    if SmtpSettings().configured:
        return None
    return start_mail_sink(core.data_dir, core.smtp_sink_port)


def _mail_line(sink: MailSink | None) -> str:
    smtp = SmtpSettings()
    if sink is not None:
        return f"  smtp (mail sink)     smtp://{sink.host}:{sink.port}   (mails kept in {sink.directory}, and logged)"
    if smtp.configured:
        return f"  smtp                 {smtp.host}:{smtp.effective_port} ({smtp.security})"
    return "  smtp                 none (the mail sink did not start: see the warning above)"


def _start(spec: ServiceSpec, env: dict[str, str]) -> RunningService:
    settings = spec.settings_factory()
    if not _port_free(settings.host, settings.port):
        raise SettingsError(
            f"port {settings.port} for {spec.name} is in use; set {spec.env_prefix}PORT to another port"
        )
    process = subprocess.Popen([sys.executable, "-m", "mirante", "serve", spec.name], env=env)  # noqa: S603
    return RunningService(spec=spec, url=f"http://{settings.host}:{settings.port}", process=process)


def _wait_ready(services: list[RunningService]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    pending = list(services)
    with httpx.Client(timeout=2.0) as client:
        while pending and time.monotonic() < deadline:
            for service in list(pending):
                if service.process.poll() is not None:
                    raise SettingsError(f"{service.spec.name} exited with code {service.process.returncode}")
                try:
                    if client.get(f"{service.url}/ready").status_code == 200:
                        pending.remove(service)
                except httpx.HTTPError:
                    pass
            time.sleep(0.3)
    if pending:
        raise SettingsError(f"not ready after {READY_TIMEOUT_SECONDS:.0f} s: {', '.join(s.spec.name for s in pending)}")


def _stop(services: list[RunningService]) -> None:
    for service in services:
        if service.process.poll() is None:
            service.process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for service in services:
        try:
            service.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()


@dataclass
class _Supervised:
    """One service under `mirante up`: its current process and when it is due to start again."""

    spec: ServiceSpec
    backoff: RestartBackoff
    started_at: float
    restart_at: float | None = None
    restarts: int = 0


def _supervise(services: list[RunningService], env: dict[str, str]) -> None:
    """Start again, with backoff, every service whose process exits; returns only through a stop signal.

    `services` is updated in place, so whoever stops the suite stops the current processes.
    """
    now = time.monotonic()
    states = [_Supervised(service.spec, RestartBackoff(), started_at=now) for service in services]
    while True:
        now = time.monotonic()
        for index, state in enumerate(states):
            if state.restart_at is None:
                code = services[index].process.poll()
                if code is None:
                    continue
                delay = state.backoff.delay_after_exit(now - state.started_at)
                state.restart_at = now + delay
                logger.error(
                    "%s exited with code %s after %.0f s; restarting it in %.1f s",
                    state.spec.name,
                    code,
                    now - state.started_at,
                    delay,
                )
            elif now >= state.restart_at:
                try:
                    services[index] = _start(state.spec, env)
                except SettingsError as exc:
                    delay = state.backoff.delay_after_failed_start()
                    state.restart_at = now + delay
                    logger.error("could not restart %s: %s; trying again in %.1f s", state.spec.name, exc, delay)
                    continue
                state.restarts += 1
                state.started_at, state.restart_at = now, None
                logger.warning(
                    "%s restarted (pid %s, restart %d)",
                    state.spec.name,
                    services[index].process.pid,
                    state.restarts,
                )
        time.sleep(0.5)


class _StopRequestedError(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    # Only the first stop signal interrupts: a Ctrl-C under `make run` arrives twice (from the terminal, to the
    # whole process group, and again forwarded by `uv run`), and a second raise would abort the stopping itself.
    # The stopping is bounded (STOP_TIMEOUT_SECONDS, then SIGKILL), so ignoring the later ones loses nothing.
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_IGN)
    raise _StopRequestedError


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _catch_stop_signals() -> dict[int, Any]:
    # SIGINT too: a shell starts background commands with SIGINT ignored, and Python then never raises
    # KeyboardInterrupt, so `mirante up &` in a script would shrug off the Ctrl-C its supervisor sends.
    return {signum: signal.signal(signum, _raise_stop) for signum in STOP_SIGNALS}


def _restore_signals(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def _print_urls(urls: StackUrls, services: list[RunningService], sink: MailSink | None) -> None:
    lines = ["", "Mirante is up:"]
    lines += [f"  {s.spec.name:<20} {s.url}   (docs {s.url}/docs)" for s in services]
    lines += [
        "Infrastructure:",
        f"  postgres             {urls.database_url}",
        f"  redis                {urls.redis_url}",
        f"  mqtt                 {urls.mqtt_url}",
        _mail_line(sink),
        "Create an admin in another terminal: .venv/bin/mirante user create admin --role admin",
        "Press Ctrl-C to stop.",
        "",
    ]
    print("\n".join(lines), flush=True)


def run_suite(names: list[str], migrate: bool = True) -> int:
    """`mirante up`: infrastructure, migrations, services; stops them all on Ctrl-C or SIGTERM.

    A service that exits once the suite is up is started again after a delay that doubles with each quick
    exit (1 s up to 60 s, back to 1 s after a minute of running), so one crash does not take the others and
    the embedded broker down with it.
    """
    specs = [get_service(name) for name in names] if names else discover_services()
    if not specs:
        raise SettingsError("no services installed")
    core = CoreSettings()
    stack = EmbeddedStack(core.data_dir, publish_state=True)
    services: list[RunningService] = []
    sink: MailSink | None = None
    previous = _catch_stop_signals()
    try:
        urls = stack.start()
        if migrate:
            histories = asyncio.run(upgrade_all(urls.database_url))
            logger.info("migrated %s", ", ".join(histories))
        sink = _mail_sink(core)
        env = _child_env(stack, sink)
        services.extend(_start(spec, env) for spec in specs)
        _wait_ready(services)
        _print_urls(urls, services, sink)
        _supervise(services, env)
        return 0
    except (_StopRequestedError, KeyboardInterrupt):
        logger.info("stopping")
        return 0
    finally:
        _stop(services)
        if sink is not None:
            sink.stop()
        stack.stop()
        _restore_signals(previous)


def run_infra_only() -> int:
    """`mirante devstack`: only Postgres, Redis, MQTT and the mail sink, until Ctrl-C."""
    core = CoreSettings()
    stack = EmbeddedStack(core.data_dir, publish_state=True)
    sink: MailSink | None = None
    previous = _catch_stop_signals()
    try:
        urls = stack.start()
        sink = _mail_sink(core)
        print(f"MIRANTE_DATABASE_URL={urls.database_url}")
        print(f"MIRANTE_REDIS_URL={urls.redis_url}")
        print(f"MIRANTE_MQTT_URL={urls.mqtt_url}")
        for name, value in (sink.child_env() if sink is not None else {}).items():
            print(f"{name}={value}")
        sys.stdout.flush()
        while True:
            time.sleep(1)
    except (_StopRequestedError, KeyboardInterrupt):
        return 0
    finally:
        if sink is not None:
            sink.stop()
        stack.stop()
        _restore_signals(previous)
