"""A small recording server for the client's tests: the wire contract of recording-storage on disk, on
127.0.0.1, with faults the tests inject (a connection dropped mid-body, 503 with Retry-After, a 409 offset
mismatch, an expired session, a refused token) and a log of every byte it read."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

TOKEN = "test-token"
API = "/api/v1"
METADATA_MAX = 1024 * 1024
READ_BLOCK = 16 * 1024


class FakeClock:
    """Time that moves only when someone sleeps: sleeps return at once and are recorded."""

    def __init__(self, start: datetime | None = None) -> None:
        self._monotonic = 1000.0
        self._now = start or datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday, noon
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self._monotonic

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._monotonic += seconds
            self._now += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(max(seconds, 0.0))
        await asyncio.sleep(0)


@dataclass
class Fault:
    """Applied to the first request matching `method` and `route` ("create", "upload", "status", "finalize").

    `status`: answer it with this status (and `headers`) without doing anything; `drop_after`: for an upload,
    store that many body bytes then cut the connection without an answer; `expire`: expire the session first.
    """

    method: str
    route: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop_after: int | None = None
    expire: bool = False
    kind: str | None = None  # for uploads: "video" or "metadata"
    times: int = 1
    skip: int = 0  # matching requests to let through first
    drop_answer: bool = False  # do the work, then cut the connection instead of answering
    delay: float = 0.0  # seconds to wait before doing anything (a client timeout shorter than it fires)


@dataclass
class Session:
    id: str
    request: dict[str, Any]
    video_size: int
    directory: Path
    received: dict[str, int] = field(default_factory=lambda: {"video": 0, "metadata": 0})
    expired: bool = False
    finalized: bool = False
    recording_id: str | None = None


@dataclass
class UploadRecord:
    session_id: str
    kind: str
    offset: int
    stored: int
    discarded: int
    status: int | None


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (a timeout, a paused upload) leaves the answer nowhere to go: expected here.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class FakeRecordingServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.token = TOKEN
        self.lock = threading.Lock()
        self.sessions: dict[str, Session] = {}
        self.recordings: dict[str, dict[str, Any]] = {}
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, int | None]] = []
        self.uploads: list[UploadRecord] = []
        self.max_video_size = 50 * 1024 * 1024
        self.clock: FakeClock | None = None
        # (fake monotonic time, bytes stored so far across all uploads) at every block read
        self.arrivals: list[tuple[float, int]] = []
        self.wall_times: list[datetime] = []
        self._stored_total = 0
        self._counter = 0
        self.server = QuietServer(("127.0.0.1", 0), self._handler_class())
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}{API}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def inject(self, method: str, route: str, **kwargs: Any) -> None:
        with self.lock:
            self.faults.append(Fault(method, route, **kwargs))

    def take_fault(self, method: str, route: str, kind: str | None) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.method == method and fault.route == route and fault.kind in (None, kind):
                    if fault.skip > 0:
                        fault.skip -= 1
                        continue
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def count(self, method: str, route: str) -> int:
        return sum(1 for m, r, _ in self.requests if (m, r) == (method, route))

    def stored_bytes(self, kind: str) -> int:
        return sum(u.stored for u in self.uploads if u.kind == kind)

    def wire_bytes(self, kind: str) -> int:
        return sum(u.stored + u.discarded for u in self.uploads if u.kind == kind)

    def new_id(self, prefix: str) -> str:
        with self.lock:
            self._counter += 1
            return f"{prefix}{self._counter}"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.route("GET")

            def do_POST(self) -> None:
                self.route("POST")

            def do_DELETE(self) -> None:
                self.route("DELETE")

            def answer(self, status: int, document: Any = None, headers: dict[str, str] | None = None) -> None:
                body = b"" if document is None else json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
                self.answer(status, {"error": {"code": code, "message": message}, "request_id": "r"}, headers)

            def discard_body(self) -> int:
                remaining = int(self.headers.get("Content-Length") or 0)
                discarded = remaining
                while remaining > 0:
                    block = self.rfile.read(min(READ_BLOCK, remaining))
                    if not block:
                        break
                    remaining -= len(block)
                return discarded

            def route(self, method: str) -> None:
                parts = urlsplit(self.path)
                path = parts.path.removeprefix(API).strip("/").split("/")
                query = parse_qs(parts.query)
                if path == ["health"]:
                    fake.requests.append((method, "health", 200))
                    self.answer(200, {"status": "ok"})
                    return
                name = self.route_name(method, path)
                kind = query.get("part", [None])[0]
                fault = fake.take_fault(method, name, kind)
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    fake.requests.append((method, name, 401))
                    self.discard_body()
                    self.error(401, "unauthorized", "authentication required", {"WWW-Authenticate": "Bearer"})
                    return
                if fault is not None and fault.delay:
                    time.sleep(fault.delay)
                if fault is not None and fault.expire and len(path) > 1 and path[1] in fake.sessions:
                    fake.sessions[path[1]].expired = True
                if fault is not None and fault.status is not None:
                    fake.requests.append((method, name, fault.status))
                    discarded = self.discard_body()
                    if name == "upload":
                        fake.uploads.append(UploadRecord(path[1], kind or "", -1, 0, discarded, fault.status))
                    self.error(fault.status, "injected", f"injected {fault.status}", fault.headers)
                    return
                handler: Callable[..., None] = getattr(self, f"handle_{name}", self.handle_unknown)
                handler(path, kind, fault)

            @staticmethod
            def route_name(method: str, path: list[str]) -> str:
                if path == ["uploads", "create-session"]:
                    return "create"
                if len(path) == 3 and path[0] == "uploads":
                    return {"file": "upload", "status": "status", "finalize": "finalize"}.get(path[2], "unknown")
                if path[0] == "recordings":
                    return "recordings" if len(path) == 1 else f"recording_{method.lower()}"
                return "unknown"

            def handle_unknown(self, path: list[str], kind: str | None, fault: Fault | None) -> None:
                self.discard_body()
                self.error(404, "not_found", "no such route")

            def session(self, session_id: str, name: str) -> Session | None:
                session = fake.sessions.get(session_id)
                if session is None:
                    fake.requests.append(("?", name, 404))
                    self.error(404, "not_found", "no such upload session")
                    return None
                if session.expired:
                    fake.requests.append(("?", name, 410))
                    self.error(410, "gone", "upload session expired")
                    return None
                return session

            def handle_create(self, path: list[str], kind: str | None, fault: Fault | None) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = json.loads(self.rfile.read(length))
                size = request.get("file_size")
                if not isinstance(size, int) or size <= 0 or not isinstance(request.get("session_id"), str):
                    fake.requests.append(("POST", "create", 422))
                    self.error(422, "validation_error", "invalid request")
                    return
                if size > fake.max_video_size:
                    fake.requests.append(("POST", "create", 413))
                    self.error(413, "payload_too_large", "recording larger than allowed")
                    return
                session_id = fake.new_id("upl_")
                directory = fake.root / session_id
                directory.mkdir(parents=True)
                fake.sessions[session_id] = Session(session_id, request, size, directory)
                fake.requests.append(("POST", "create", 201))
                base = f"http://127.0.0.1:{fake.port}{API}/uploads/{session_id}/file"
                self.answer(
                    201,
                    {
                        "session_id": session_id,
                        "video_upload_url": f"{base}?part=video",
                        # relative to the API root, as a server behind a proxy may answer
                        "metadata_upload_url": f"uploads/{session_id}/file?part=metadata",
                        "expires_at": "2099-01-01T00:00:00Z",
                    },
                )

            def handle_upload(self, path: list[str], kind: str | None, fault: Fault | None) -> None:
                session = self.session(path[1], "upload")
                if session is None or kind not in ("video", "metadata"):
                    return
                offset = int(self.headers.get("Upload-Offset") or 0)
                length = int(self.headers.get("Content-Length") or 0)
                current = session.received[kind]
                if offset != current:
                    fake.requests.append(("POST", "upload", 409))
                    discarded = self.discard_body()
                    fake.uploads.append(UploadRecord(session.id, kind, offset, 0, discarded, 409))
                    self.error(409, "conflict", "offset mismatch", {"Upload-Offset": str(current)})
                    return
                limit = session.video_size if kind == "video" else METADATA_MAX
                if offset + length > limit:
                    fake.requests.append(("POST", "upload", 413))
                    discarded = self.discard_body()
                    fake.uploads.append(UploadRecord(session.id, kind, offset, 0, discarded, 413))
                    self.error(413, "payload_too_large", "more bytes than declared")
                    return
                record = UploadRecord(session.id, kind, offset, 0, 0, None)
                fake.uploads.append(record)
                if fake.clock is not None:
                    fake.wall_times.append(fake.clock.now())
                remaining = length
                stop_at = fault.drop_after if fault is not None else None
                with (session.directory / kind).open("ab") as out:
                    while remaining > 0:
                        want = min(READ_BLOCK, remaining)
                        if stop_at is not None:
                            want = min(want, stop_at - record.stored)
                        block = self.rfile.read(want) if want > 0 else b""
                        if block:
                            out.write(block)
                            out.flush()
                            record.stored += len(block)
                            remaining -= len(block)
                            session.received[kind] += len(block)
                            with fake.lock:
                                fake._stored_total += len(block)
                                if fake.clock is not None:
                                    fake.arrivals.append((fake.clock.monotonic(), fake._stored_total))
                        if stop_at is not None and record.stored >= stop_at:
                            fake.requests.append(("POST", "upload", None))
                            self.close_connection = True
                            self.connection.shutdown(socket.SHUT_RDWR)
                            return
                        if not block:
                            break
                record.status = 200
                fake.requests.append(("POST", "upload", 200))
                received = session.received[kind]
                # The client may have given up on the body (a paused upload): nobody reads this answer then.
                with contextlib.suppress(OSError):
                    self.answer(200, {"received": received}, {"Upload-Offset": str(received)})

            def handle_status(self, path: list[str], kind: str | None, fault: Fault | None) -> None:
                session = self.session(path[1], "status")
                if session is None:
                    return
                fake.requests.append(("GET", "status", 200))
                self.answer(
                    200,
                    {
                        "session_id": session.id,
                        "recording_id": session.recording_id,
                        "video": {"received": session.received["video"], "size": session.video_size},
                        "metadata": {"received": session.received["metadata"], "size": None},
                    },
                )

            def handle_finalize(self, path: list[str], kind: str | None, fault: Fault | None) -> None:
                session = self.session(path[1], "finalize")
                if session is None:
                    return
                if session.received["video"] < session.video_size or session.received["metadata"] == 0:
                    fake.requests.append(("POST", "finalize", 409))
                    self.error(409, "upload_incomplete", "video or metadata incomplete")
                    return
                digest = hashlib.sha256((session.directory / "video").read_bytes()).hexdigest()
                expected = session.request.get("sha256")
                if expected and digest != expected:
                    fake.requests.append(("POST", "finalize", 422))
                    self.error(422, "checksum_mismatch", "sha256 differs")
                    return
                session.finalized = True
                recording_id = fake.new_id("rec_")
                session.recording_id = recording_id
                fake.recordings[recording_id] = {**session.request, "id": recording_id, "upload_session_id": session.id}
                if fault is not None and fault.drop_answer:
                    fake.requests.append(("POST", "finalize", None))
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                fake.requests.append(("POST", "finalize", 201))
                self.answer(201, fake.recordings[recording_id])

            def handle_recordings(self, path: list[str], kind: str | None, fault: Fault | None) -> None:
                results = list(fake.recordings.values())
                self.answer(200, {"count": len(results), "next": None, "previous": None, "results": results})

            def handle_recording_get(self, path: list[str], kind: str | None, fault: Fault | None) -> None:
                recording = fake.recordings.get(path[1])
                if recording is None:
                    self.error(404, "not_found", "no such recording")
                else:
                    self.answer(200, recording)

            def handle_recording_delete(self, path: list[str], kind: str | None, fault: Fault | None) -> None:
                if fake.recordings.pop(path[1], None) is None:
                    self.error(404, "not_found", "no such recording")
                else:
                    self.send_response(204)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

        return Handler


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[FakeRecordingServer]:
    server = FakeRecordingServer(tmp_path / "server")
    server.start()
    yield server
    server.close()


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def clock_at() -> Callable[[datetime], FakeClock]:
    return FakeClock


@pytest.fixture
def recording(tmp_path: Path) -> tuple[Path, Path]:
    """A 3 MiB video of varied bytes and its WATS metadata file."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    video = folder / "session_123_Production_20241026_150000.mp4"
    video.write_bytes(random.Random(13).randbytes(3 * 1024 * 1024))
    metadata = folder / "session_123_metadata.json"
    metadata.write_text(
        json.dumps(
            {
                "session_id": "rdp_123_1729950022",
                "connection_info": {"con_codigo": 123, "name": "Production Server", "wats_user": "jefferson.silva"},
                "start_time": "2024-10-26T15:00:22.123456",
                "recorder_settings": {"fps": 10, "quality": 23},
            }
        )
    )
    return video, metadata
