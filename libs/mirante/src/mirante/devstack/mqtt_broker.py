"""Embedded MQTT broker: Mosquitto when its binary is installed, amqtt otherwise.

Mosquitto keeps messages queued for offline persistent sessions (what zero-loss ingest relies on) and
speaks MQTT 5; amqtt 0.12 speaks MQTT 3.1.1 only and drops what was queued for an offline session, so it
is a fallback for trying the suite, announced with a warning.

Both let any client in by default, so simulators need no credentials. With `MIRANTE_EMBEDDED_MQTT_AUTH` set to
the suite's broker-auth URL (telemetry-ingest's `/api/v1/mqtt/go-auth`) and `MIRANTE_EMBEDDED_MQTT_AUTH_SECRET`
to its broker secret, the embedded broker is amqtt with `amqtt_auth`'s plugins: devices connect and publish only
with the credentials the suite issued them, as behind EMQX or Mosquitto with mosquitto-go-auth. Mosquitto 2
has no HTTP authentication of its own (that needs the go-auth plugin), so auth always runs on amqtt. The
suite's own clients get an account generated at each start, carried in the broker URL the stack hands out.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit

from mirante.devstack.errors import ComponentStartError, InvalidStackConfigError, StackError
from mirante.devstack.probes import mqtt_accepts, wait_until
from mirante.devstack.processes import ChildProcess, log_tail, reap_orphan

logger = logging.getLogger(__name__)

MqttBrokerKind = Literal["auto", "mosquitto", "amqtt"]
_KINDS: dict[str, MqttBrokerKind] = {"auto": "auto", "mosquitto": "mosquitto", "amqtt": "amqtt"}
BROKER_ENV = "MIRANTE_EMBEDDED_MQTT"
PORT_ENV = "MIRANTE_EMBEDDED_MQTT_PORT"
DEFAULT_MQTT_PORT = 18830  # not 1883, so a system broker on the same machine keeps its port
HOST = "127.0.0.1"
AUTH_ENV = "MIRANTE_EMBEDDED_MQTT_AUTH"
AUTH_SECRET_ENV = "MIRANTE_EMBEDDED_MQTT_AUTH_SECRET"
SUITE_USERNAME = "mirante-suite"


@dataclass(frozen=True)
class BrokerAuth:
    """Device authentication on the embedded broker: the go-auth HTTP endpoints to ask, their secret, and the
    account of the suite's own clients (its password is new at every start)."""

    url: str
    secret: str = field(repr=False)
    username: str = SUITE_USERNAME
    password: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)


def configured_auth(url: str | None = None, secret: str | None = None) -> BrokerAuth | None:
    """Device authentication asked for through the arguments or `MIRANTE_EMBEDDED_MQTT_AUTH`(`_SECRET`), else None."""
    url = (url if url is not None else os.environ.get(AUTH_ENV, "")).strip()
    if not url:
        return None
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise InvalidStackConfigError(
            f"{AUTH_ENV} must be the http(s) URL of the broker-auth endpoints, e.g. "
            f"http://127.0.0.1:8002/api/v1/mqtt/go-auth; got {url!r}"
        )
    secret = secret if secret is not None else os.environ.get(AUTH_SECRET_ENV, "")
    if not secret:
        raise InvalidStackConfigError(
            f"{AUTH_ENV} needs {AUTH_SECRET_ENV}: the broker secret telemetry-ingest expects "
            "(its TELEMETRY_INGEST_BROKER_AUTH_SECRET)"
        )
    return BrokerAuth(url=url, secret=secret)


# Debian and Ubuntu install the broker in sbin folders that are not on a regular user's PATH.
_EXTRA_BINARY_FOLDERS = (
    "/usr/sbin",
    "/usr/local/sbin",
    "/opt/homebrew/sbin",
    "/usr/local/opt/mosquitto/sbin",
)

AMQTT_WARNING = (
    "the embedded MQTT broker is amqtt (%s): it speaks MQTT 3.1.1 only and does not deliver messages queued "
    "for a persistent session while it was offline. Fine for trying the suite; install mosquitto "
    "(e.g. `apt-get install mosquitto`) for anything that must not lose messages."
)


def broker_kind(requested: str | None = None) -> MqttBrokerKind:
    """The broker to embed: `requested`, else `MIRANTE_EMBEDDED_MQTT`, else auto."""
    value = (requested or os.environ.get(BROKER_ENV) or "auto").strip().lower()
    kind = _KINDS.get(value)
    if kind is not None:
        return kind
    raise InvalidStackConfigError(f"{BROKER_ENV} must be auto, mosquitto or amqtt, got {value!r}")


def configured_port(requested: int | None = None) -> int | None:
    """The port asked for through the argument or `MIRANTE_EMBEDDED_MQTT_PORT`, else None."""
    raw = requested if requested is not None else os.environ.get(PORT_ENV)
    if raw is None or raw == "":
        return None
    try:
        port = int(raw)
    except ValueError:
        raise InvalidStackConfigError(f"{PORT_ENV} must be a port number, got {raw!r}") from None
    if not 1 <= port <= 65535:
        raise InvalidStackConfigError(f"MQTT port must be within 1-65535, got {port}")
    return port


def find_mosquitto() -> str | None:
    """Path of a mosquitto binary on PATH (or in the usual sbin folders), else None."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *_EXTRA_BINARY_FOLDERS])
    return shutil.which("mosquitto", path=search)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Brokers bind with SO_REUSEADDR; without it, connections in TIME_WAIT would look like a listener.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


PORT_RECORD = "mqtt.port"


def recorded_port(data_dir: Path) -> int | None:
    """The port the embedded broker of `data_dir` listened on last time, if it ever started."""
    try:
        port = int((data_dir / PORT_RECORD).read_text().strip())
    except (OSError, ValueError):
        return None
    return port if 1 <= port <= 65535 else None


def record_port(data_dir: Path, port: int) -> None:
    """Remember the broker's port: devices are configured with it, so later starts must keep it."""
    (data_dir / PORT_RECORD).write_text(f"{port}\n")


def choose_port(requested: int | None, recorded: int | None = None) -> int:
    """A configured port, else the one used before, else 18830, else any free port.

    A configured or previously used port that is taken is an error rather than a reason to move: devices
    and other terminals were told that port, and a broker elsewhere would strand their messages.
    """
    if requested is not None:
        if not port_is_free(requested):
            raise StackError(f"MQTT port {requested} on {HOST} is already in use; choose another with {PORT_ENV}")
        return requested
    if recorded is not None:
        if not port_is_free(recorded):
            raise StackError(
                f"MQTT port {recorded} on {HOST}, where the embedded broker listened before and devices expect it, "
                f"is already in use by another process; free it, or move the broker on purpose with {PORT_ENV}"
            )
        return recorded
    if port_is_free(DEFAULT_MQTT_PORT):
        return DEFAULT_MQTT_PORT
    port = _free_port()
    logger.info("port %s is taken; the embedded MQTT broker uses %s", DEFAULT_MQTT_PORT, port)
    return port


def render_mosquitto_config(port: int) -> str:
    """mosquitto.conf for the embedded broker; it runs in its data folder, so no path appears here."""
    lines = [
        "# Written by mirante.devstack at every start; edits are overwritten.",
        f"listener {port} {HOST}",
        "allow_anonymous true",
        "# Sessions and queued messages survive a restart (saved on exit and every minute).",
        "persistence true",
        "persistence_file mosquitto.db",
        "autosave_interval 60",
        "# Subscribers acknowledge after their database commit, in batches: the default of 20 unacknowledged",
        "# messages would stall an MQTT 3.1.1 batch consumer.",
        "max_inflight_messages 0",
        "# A consumer that is restarting or behind must not lose QoS 1 messages to the default 1000 limit.",
        "max_queued_messages 1000000",
        "max_queued_bytes 0",
        "log_dest stdout",
        "log_timestamp_format %Y-%m-%dT%H:%M:%S",
    ]
    if os.geteuid() == 0:
        # Run as root, Mosquitto would switch to the `mosquitto` user, which cannot write a data folder
        # created by whoever started the stack; it keeps that user instead.
        lines.append(f"user {pwd.getpwuid(os.geteuid()).pw_name}")
    return "\n".join([*lines, ""])


def render_amqtt_config(port: int, auth: BrokerAuth | None = None) -> str:
    """amqtt broker configuration (JSON is valid YAML, which amqtt reads): anyone, or the suite's HTTP auth."""
    plugins: dict[str, dict[str, object]]
    if auth is None:
        plugins = {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
    else:
        checks: dict[str, object] = {
            "url": auth.url,
            "secret": auth.secret,
            "suite_username": auth.username,
            "suite_password": auth.password,
        }
        plugins = {
            "mirante.devstack.amqtt_auth.HttpAuthPlugin": checks,
            "mirante.devstack.amqtt_auth.HttpTopicPlugin": checks,
        }
    config = {"listeners": {"default": {"type": "tcp", "bind": f"{HOST}:{port}"}}, "plugins": plugins}
    return json.dumps(config, indent=2) + "\n"


class EmbeddedMqttBroker:
    """Mosquitto (preferred) or amqtt, listening on 127.0.0.1, with its files under the data folder."""

    component = "mqtt"

    def __init__(
        self, data_dir: Path, *, kind: MqttBrokerKind = "auto", port: int | None = None, auth: BrokerAuth | None = None
    ) -> None:
        self.data_dir = data_dir
        self.requested_kind = kind
        self.requested_port = port
        self.auth = auth
        self.kind: Literal["mosquitto", "amqtt"] | None = None
        self.directory = data_dir / "mosquitto"
        self._process: ChildProcess | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.kind or 'mqtt'}.log"

    def start(self, timeout: float) -> str:
        """Start the broker and return its `mqtt://` URL once it accepts a CONNECT (with the suite's account in
        it when device authentication is on)."""
        if self.auth is not None and self.requested_kind == "mosquitto":
            raise StackError(
                f"{AUTH_ENV} runs on the amqtt broker: Mosquitto authenticates over HTTP only with the "
                f"mosquitto-go-auth plugin (see docs/telemetry-ingest.md); unset {BROKER_ENV} or set it to amqtt"
            )
        wanted = "auto" if self.auth is None else "amqtt"
        mosquitto = find_mosquitto() if self.requested_kind in ("auto", "mosquitto") and wanted == "auto" else None
        if mosquitto is None and self.requested_kind == "mosquitto":
            raise StackError("MIRANTE_EMBEDDED_MQTT=mosquitto but no mosquitto binary is installed")
        # A broker left running by a stack that died holds the port it must get back: stop it first.
        if mosquitto is not None:
            self._take_over("mosquitto")
        else:
            self._take_over("amqtt", signal.SIGINT)
        port = choose_port(self.requested_port, recorded_port(self.data_dir))
        if mosquitto is not None:
            process = self._mosquitto(mosquitto, port)
        else:
            process = self._amqtt(port)
            if self.auth is not None:
                reason = f"{AUTH_ENV} is set"
            elif self.requested_kind == "amqtt":
                reason = f"{BROKER_ENV}=amqtt"
            else:
                reason = "no mosquitto binary found"
            logger.warning(AMQTT_WARNING, reason)
        process.start()
        self._process = process

        def ready() -> bool:
            code = process.exit_code()
            if code is not None:
                raise ComponentStartError(
                    f"MQTT broker ({self.kind})",
                    f"exited with status {code}",
                    self.log_path,
                    log_tail(self.log_path),
                )
            if self.auth is None:
                return mqtt_accepts(HOST, port)
            return mqtt_accepts(HOST, port, username=self.auth.username, password=self.auth.password)

        try:
            if not wait_until(ready, timeout, interval=0.1):
                raise ComponentStartError(
                    f"MQTT broker ({self.kind})",
                    f"no CONNACK on {HOST}:{port} within {timeout:.0f} s",
                    self.log_path,
                    log_tail(self.log_path),
                )
        except ComponentStartError:
            self.stop()
            raise
        record_port(self.data_dir, port)
        if self.auth is not None:
            return f"mqtt://{quote(self.auth.username, safe='')}:{quote(self.auth.password, safe='')}@{HOST}:{port}"
        return f"mqtt://{HOST}:{port}"

    def stop(self) -> None:
        """Mosquitto writes its persistence file on SIGTERM; amqtt shuts down cleanly on SIGINT."""
        process, self._process = self._process, None
        if process is not None:
            process.stop()

    def _take_over(self, kind: Literal["mosquitto", "amqtt"], stop_signal: signal.Signals = signal.SIGTERM) -> None:
        if kind == "amqtt" and importlib.util.find_spec("amqtt") is None:
            raise StackError(
                "no MQTT broker available: install mosquitto, or amqtt through mirante[embedded], "
                "or set MIRANTE_MQTT_URL"
            )
        self.kind = kind
        self.directory = self.data_dir / kind
        self.directory.mkdir(parents=True, exist_ok=True)
        reap_orphan(self.directory / f"{kind}.pid", kind, stop_signal)

    def _mosquitto(self, executable: str, port: int) -> ChildProcess:
        pid_file = self.directory / "mosquitto.pid"
        config = self.directory / "mosquitto.conf"
        config.write_text(render_mosquitto_config(port))
        return ChildProcess(
            [executable, "-c", str(config)], cwd=self.directory, log_path=self.log_path, pid_file=pid_file
        )

    def _amqtt(self, port: int) -> ChildProcess:
        pid_file = self.directory / "amqtt.pid"
        config = self.directory / "amqtt.yaml"
        # It holds the broker secret and the suite's password when auth is on: readable by this user only.
        config.touch(mode=0o600, exist_ok=True)
        config.chmod(0o600)
        config.write_text(render_amqtt_config(port, self.auth))
        return ChildProcess(
            [sys.executable, "-m", "amqtt.scripts.broker_script", "-c", str(config)],
            cwd=self.directory,
            log_path=self.log_path,
            pid_file=pid_file,
            stop_signal=signal.SIGINT,
            stop_timeout=5.0,
        )
