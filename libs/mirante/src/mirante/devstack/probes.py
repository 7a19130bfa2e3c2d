"""Cheap protocol-level checks that a server answers, without client libraries or an event loop.

They run from synchronous code (a command starting up, a pytest fixture) and must never hang, so every
socket gets a timeout and every failure means "does not answer".
"""

from __future__ import annotations

import socket
import struct
import time
import uuid
from collections.abc import Callable
from urllib.parse import parse_qs, unquote, urlsplit

from mirante.devstack.urls import Component

_POSTGRES_SSL_REQUEST = struct.pack("!ii", 8, 80877103)
_MQTT_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


def _connect_tcp(host: str, port: int, timeout: float) -> socket.socket:
    return socket.create_connection((host, port), timeout=timeout)


def _connect_unix(path: str, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock


def _exchange(sock: socket.socket, request: bytes, reply_size: int) -> bytes:
    with sock:
        sock.sendall(request)
        return sock.recv(reply_size)


def postgres_socket(url: str, timeout: float) -> socket.socket:
    """A connected socket to the server of a libpq-style URL (TCP or a `?host=/dir` Unix socket)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = (query.get("host") or [parts.hostname or "localhost"])[0].split(",")[0]
    port = parts.port or int((query.get("port") or ["5432"])[0].split(",")[0])
    if host.startswith("/"):
        return _connect_unix(f"{unquote(host)}/.s.PGSQL.{port}", timeout)
    return _connect_tcp(host, port, timeout)


def postgres_answers(url: str, timeout: float = 1.0) -> bool:
    """True when a PostgreSQL server answers an SSLRequest at `url`."""
    try:
        reply = _exchange(postgres_socket(url, timeout), _POSTGRES_SSL_REQUEST, 1)
    except OSError:
        return False
    return reply in (b"S", b"N")


def _redis_ping(url: str, timeout: float) -> bytes:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        sock = _connect_unix(unquote(parts.path), timeout)
    else:
        sock = _connect_tcp(parts.hostname or "localhost", parts.port or 6379, timeout)
    if parts.scheme == "rediss":
        sock.close()
        return b"+TLS"  # reachable; speaking TLS here is not worth it for a liveness check
    return _exchange(sock, b"PING\r\n", 64)


def redis_answers(url: str, timeout: float = 1.0) -> bool:
    """True when a Redis server replies at `url` (an auth error still counts as an answer)."""
    try:
        return _redis_ping(url, timeout)[:1] in (b"+", b"-")
    except OSError:
        return False


def redis_ready(url: str, timeout: float = 1.0) -> bool:
    """True when Redis at `url` accepts commands (PONG, not LOADING)."""
    try:
        return _redis_ping(url, timeout).startswith(b"+PONG")
    except OSError:
        return False


def mqtt_address(url: str) -> tuple[str, int]:
    """Host and port of an `mqtt://[user:password@]host:port` URL."""
    parts = urlsplit(url)
    return parts.hostname or "localhost", parts.port or _MQTT_DEFAULT_PORTS.get(parts.scheme, 1883)


def mqtt_answers(url: str, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections at the broker address of `url`."""
    try:
        _connect_tcp(*mqtt_address(url), timeout).close()
    except OSError:
        return False
    return True


def _mqtt_string(value: str) -> bytes:
    data = value.encode()
    return struct.pack("!H", len(data)) + data


def _remaining_length(size: int) -> bytes:
    """MQTT's variable-length encoding: seven bits a byte, the high bit set while more follow."""
    encoded = bytearray()
    while True:
        size, digit = divmod(size, 128)
        encoded.append(digit | (0x80 if size else 0))
        if not size:
            return bytes(encoded)


def mqtt_accepts(
    host: str, port: int, timeout: float = 1.0, *, username: str | None = None, password: str | None = None
) -> bool:
    """True when an MQTT 3.1.1 broker at host:port accepts a clean-session CONNECT, anonymous unless a username
    (and password) is given."""
    client_id = f"mirante-probe-{uuid.uuid4().hex[:8]}"
    flags = 0b0000_0010
    payload = _mqtt_string(client_id)
    if username is not None:
        flags |= 0b1000_0000
        payload += _mqtt_string(username)
        if password is not None:
            flags |= 0b0100_0000
            payload += _mqtt_string(password)
    variable_header = _mqtt_string("MQTT") + bytes([4, flags]) + struct.pack("!H", 10)
    body = variable_header + payload
    connect = bytes([0x10]) + _remaining_length(len(body)) + body
    try:
        with _connect_tcp(host, port, timeout) as sock:
            sock.sendall(connect)
            reply = sock.recv(4)
            if reply[:2] == b"\x20\x02":
                sock.sendall(b"\xe0\x00")
    except OSError:
        return False
    return len(reply) == 4 and reply[:2] == b"\x20\x02" and reply[3] == 0


def server_answers(component: Component, url: str, timeout: float = 1.0) -> bool:
    """True when the server of `component` at `url` answers."""
    checks: dict[Component, Callable[[str, float], bool]] = {
        "database": postgres_answers,
        "redis": redis_answers,
        "mqtt": mqtt_answers,
    }
    return checks[component](url, timeout)


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Call `check` until it returns True or `timeout` seconds pass; the last result is returned."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
