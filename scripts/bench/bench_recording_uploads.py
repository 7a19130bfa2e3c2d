"""recording-storage: a 1 GiB upload over loopback against a route of the same server that only reads and discards the
body; the server's peak RSS for 100 MiB and 1 GiB uploads; 8 clients uploading at once.

The real app runs under uvicorn (one process, 127.0.0.1) in a child process, local-disk storage in a temporary
folder, with one extra route (`POST /api/v1/uploads/bench-discard`) that reads the body and drops it: the most any
upload route could do on this machine. Each upload is the recorder's sequence: create the session with the video's
SHA-256, send the video raw with `Upload-Offset: 0`, send the metadata, finish (sizes and SHA-256 checked, the
recording made visible). The body is one random MiB repeated, streamed by httpx; its SHA-256 is computed before the
clock starts. The server's RSS is read from `/proc` every 20 ms while an upload runs.

The S3 path is measured against moto's S3 server (in a process of its own): a second app on the same database with
`RECORDING_STORAGE_BACKEND=s3`, each 16 MiB part sent as a multipart part with its SHA-256 checksum. moto keeps the
bytes in memory and is Python on the same cores, so this figure prices the S3 path's own work against a slow,
local S3, not what a real object store would give.

Beside the 1 GiB pairs, the same run measures what bounds their ratio on this machine: the benchmark process's CPU
time while it sends the baseline, SHA-256 alone over the same bytes in the pieces the server receives (in memory,
one stream on one core) and the CPU time of writing them into the page cache beside the storage. From these and the
server's CPU time for the baseline comes the best ratio an upload could reach here under perfect parallelism.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import httpx
from bench_process import ServiceServer, cpu_seconds, free_port
from fastapi import FastAPI, Request, Response
from report import Report

from mirante.auth.commands import create_api_key
from mirante.db import create_engine, create_sessionmaker
from mirante.devstack import StackUrls
from mirante.testing.database import create_test_database, drop_test_database
from recording_storage.config import Settings

MIB = 1024**2
GIB = 1024**3
CHUNK = os.urandom(MIB)
LARGE = GIB
SMALL = 100 * MIB
CLIENTS = 8
PER_CLIENT = 128 * MIB
ROUNDS = 2
S3_SIZE = 256 * MIB
S3_BUCKET = "bench-recordings"
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
"""What moto accepts; the benchmark never talks to a real store."""
DISCARD_PATH = "/api/v1/uploads/bench-discard"
"""Under the uploads prefix, so the same body-size limit applies as to the upload routes."""
HERE = Path(__file__).resolve().parent
WRITE_BUFFER = int(Settings.model_fields["write_buffer_bytes"].default)
"""The server's default, which the benchmark's servers run with."""
METADATA = json.dumps({"frames": 1, "note": "bench"}).encode()


async def _discard(request: Request) -> Response:
    received = chunks = 0
    async for piece in request.stream():
        received += len(piece)
        chunks += 1
    return Response(content=f"{received} {chunks}", status_code=200)


def bench_app() -> FastAPI:
    """The recording-storage app as configured by the environment, plus the discarding route (uvicorn factory)."""
    from recording_storage.main import create_app

    app = create_app()
    app.add_api_route(DISCARD_PATH, _discard, methods=["POST"], include_in_schema=False)
    return app


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class RssWatch:
    """The highest RSS of a process while the `async with` block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = 0
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.peak_kib = max(self.peak_kib, _rss_kib(self.pid))
            await asyncio.sleep(0.02)

    async def __aenter__(self) -> RssWatch:
        self.peak_kib = _rss_kib(self.pid)
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self.peak_kib = max(self.peak_kib, _rss_kib(self.pid))


def _sha256_of(size: int) -> str:
    digest = hashlib.sha256()
    for _ in range(size // MIB):
        digest.update(CHUNK)
    return digest.hexdigest()


async def _body(size: int) -> AsyncIterator[bytes]:
    for _ in range(size // MIB):
        yield CHUNK


def _body_pieces(total: int, size: int) -> Iterator[memoryview]:
    """The first `total` bytes of an upload's body (`CHUNK` repeated) in pieces of `size` bytes."""
    window = memoryview(CHUNK * (size // MIB + 2))
    for offset in range(0, total, size):
        start = offset % MIB
        yield window[start : start + min(size, total - offset)]


def _sha256_cpu_seconds(piece_size: int, expected: str) -> float:
    """CPU time of SHA-256 over the 1 GiB body in `piece_size` pieces, in memory, on this thread alone."""
    digest = hashlib.sha256()
    started = time.thread_time()
    for piece in _body_pieces(LARGE, piece_size):
        digest.update(piece)
    seconds = time.thread_time() - started
    if digest.hexdigest() != expected:
        raise RuntimeError("the hashed pieces are not the uploaded body")
    return seconds


def _page_cache_write_cpu_seconds(folder: Path) -> float:
    """CPU time of writing the 1 GiB body in the server's write buffers to a new file in `folder`, no fsync."""
    path = folder / f"page-cache-{uuid.uuid4().hex[:8]}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        started = time.thread_time()
        for piece in _body_pieces(LARGE, WRITE_BUFFER):
            if os.write(fd, piece) != len(piece):
                raise RuntimeError("a short write into the page cache")
        return time.thread_time() - started
    finally:
        os.close(fd)
        # Removed at once: its dirty pages are dropped instead of being written back while later phases run.
        path.unlink()


@dataclass
class BestCase:
    """The least wall time a 1 GiB upload could take on `cores` cores, from CPU times measured in the run."""

    client: float
    server_receiving: float
    sha256: float
    page_cache_write: float
    cores: int

    @property
    def cpu_per_core(self) -> float:
        return (self.client + self.server_receiving + self.sha256 + self.page_cache_write) / self.cores

    @property
    def baseline_cpu_per_core(self) -> float:
        return (self.client + self.server_receiving) / self.cores

    @property
    def seconds(self) -> float:
        # One stream's hash is sequential: no number of cores makes it shorter.
        return max(self.cpu_per_core, self.sha256)

    def note(self, baseline_seconds: float) -> str:
        return (
            "Best case on this machine, an upper bound under perfect parallelism: a 1 GiB upload takes at least "
            "the CPU time of receiving it (the client's and the server's for the baseline), SHA-256 alone and the "
            f"page-cache copy, spread over the {self.cores} cores: ({self.client:.2f} + "
            f"{self.server_receiving:.2f} + {self.sha256:.2f} + {self.page_cache_write:.2f}) s ÷ {self.cores} = "
            f"{self.cpu_per_core:.2f} s; and at least its one stream's hash on one core, {self.sha256:.2f} s. The "
            f"larger, {self.seconds:.2f} s, against the baseline's {baseline_seconds:.2f} s gives "
            f"{baseline_seconds / self.seconds:.2f}. It counts no fsync, database work, hand-offs between threads "
            "or Python's work per buffer, and takes every core as free for this work all the time, so no upload "
            "on this machine can do better. By the same count the baseline needed at least "
            f"({self.client:.2f} + {self.server_receiving:.2f}) s ÷ {self.cores} = {self.baseline_cpu_per_core:.2f} s "
            f"and took {baseline_seconds:.2f} s: the further apart these two, the more other work held the cores "
            "and the looser the bound. With both at their floors (an estimate, not a bound) the ratio would be "
            f"{self.baseline_cpu_per_core:.2f} ÷ {self.seconds:.2f} = {self.baseline_cpu_per_core / self.seconds:.2f}."
        )


def _session_body(size: int, sha256: str) -> dict[str, object]:
    return {
        "session_id": f"rdp_bench_{uuid.uuid4().hex[:8]}",
        "connection_info": {"name": "bench-server", "ip": "10.0.0.1", "connection_type": "RDP", "wats_user": "bench"},
        "file_size": size,
        "sha256": sha256,
        "metadata": {"start_time": "2026-01-01T00:00:00Z", "recorder_settings": {"fps": 10}},
    }


class Discarded(NamedTuple):
    seconds: float
    chunks: int
    """How many pieces the server's body stream gave."""


async def _discard_upload(client: httpx.AsyncClient, size: int) -> Discarded:
    started = time.perf_counter()
    response = await client.post(
        DISCARD_PATH, content=_body(size), headers={"Content-Type": "application/octet-stream"}
    )
    elapsed = time.perf_counter() - started
    if response.status_code != 200 or response.text.split()[0] != str(size):
        raise RuntimeError(f"discard answered {response.status_code} {response.text[:200]}")
    return Discarded(elapsed, int(response.text.split()[1]))


async def _upload(client: httpx.AsyncClient, headers: dict[str, str], size: int, sha256: str) -> float:
    """The whole recorder sequence; answers its seconds."""
    started = time.perf_counter()
    created = await client.post("/api/v1/uploads/create-session", json=_session_body(size, sha256), headers=headers)
    if created.status_code != 201:
        raise RuntimeError(f"create-session answered {created.status_code} {created.text[:300]}")
    session = created.json()
    raw = {**headers, "Content-Type": "application/octet-stream", "Upload-Offset": "0"}
    video = await client.post(session["video_upload_url"], content=_body(size), headers=raw)
    if video.status_code != 200:
        raise RuntimeError(f"the video upload answered {video.status_code} {video.text[:300]}")
    metadata = await client.post(session["metadata_upload_url"], content=METADATA, headers=raw)
    if metadata.status_code != 200:
        raise RuntimeError(f"the metadata upload answered {metadata.status_code} {metadata.text[:300]}")
    finished = await client.post(f"/api/v1/uploads/{session['session_id']}/finalize", headers=headers)
    if finished.status_code != 200 or finished.json()["video_size"] != size:
        raise RuntimeError(f"finalize answered {finished.status_code} {finished.text[:300]}")
    return time.perf_counter() - started


async def _api_key(database_url: str) -> dict[str, str]:
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            _key, plaintext = await create_api_key(session, "bench-recorder", ["recordings:upload"])
    finally:
        await engine.dispose()
    return {"Authorization": f"Bearer {plaintext}"}


def _server(
    urls: StackUrls, database_url: str, storage: Path, environment: dict[str, str] | None = None
) -> ServiceServer:
    return ServiceServer(
        "recording-storage",
        "bench_recording_uploads:bench_app",
        replace(urls, database_url=database_url),
        env_prefix="RECORDING_STORAGE_",
        settings={"storage_dir": str(storage), "max_video_bytes": str(2 * GIB), "sweep_enabled": "false"},
        environment={"MIRANTE_DATABASE_POOL_SIZE": str(CLIENTS + 4), **(environment or {})},
        app_dir=HERE,
    )


def _start_moto(port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    return subprocess.Popen(
        command, env={**os.environ, **S3_CREDENTIALS}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def _create_bucket(endpoint: str) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=endpoint, timeout=10) as client:
        while True:
            try:
                # moto does not check signatures: a plain PUT creates the bucket.
                response = await client.put(f"/{S3_BUCKET}")
                if response.status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("moto's S3 server did not start within 60 s")
            await asyncio.sleep(0.2)


def _speed(size: int, seconds: float) -> str:
    return f"{size / MIB / seconds:,.0f} MiB/s ({size / MIB:,.0f} MiB in {seconds:.2f} s)"


def _mib(kib: int) -> str:
    return f"{kib / 1024:,.0f} MiB"


async def run(urls: StackUrls) -> Report:
    large_sha, small_sha, client_sha = _sha256_of(LARGE), _sha256_of(SMALL), _sha256_of(PER_CLIENT)
    database_url = await create_test_database(urls.database_url, prefix="mirante_bench")
    storage = Path(tempfile.mkdtemp(prefix="mirante-bench-recordings-"))
    server = _server(urls, database_url, storage)
    try:
        headers = await _api_key(database_url)
        timeout = httpx.Timeout(600, connect=30)
        await server.wait_ready()
        async with httpx.AsyncClient(base_url=server.base_url, timeout=timeout) as client:
            await _discard_upload(client, 16 * MIB)
            await _upload(client, headers, 16 * MIB, _sha256_of(16 * MIB))
            idle_kib = _rss_kib(server.pid)
            async with RssWatch(server.pid) as small_watch:
                small_seconds = await _upload(client, headers, SMALL, small_sha)
            # Baseline and upload alternate, and each pair gives a ratio, so a machine whose speed drifts moves
            # both runs of a pair alike.
            pairs: list[tuple[float, float]] = []
            cpu: list[tuple[float, float]] = []
            client_cpu: list[float] = []
            discard_chunks = 0
            large_peak = 0
            for _ in range(ROUNDS):
                client_before, before = time.process_time(), cpu_seconds(server.pid)
                bare, chunks = await _discard_upload(client, LARGE)
                client_cpu.append(time.process_time() - client_before)
                discard_chunks += chunks
                between = cpu_seconds(server.pid)
                async with RssWatch(server.pid) as watch:
                    real = await _upload(client, headers, LARGE, large_sha)
                cpu.append((between - before, cpu_seconds(server.pid) - between))
                large_peak = max(large_peak, watch.peak_kib)
                pairs.append((bare, real))
        server_chunk = ROUNDS * LARGE // discard_chunks
        sha256_cpu = min(_sha256_cpu_seconds(server_chunk, large_sha) for _ in range(ROUNDS))
        write_cpu = min(_page_cache_write_cpu_seconds(storage) for _ in range(ROUNDS))
        clients = [httpx.AsyncClient(base_url=server.base_url, timeout=timeout) for _ in range(CLIENTS)]
        try:
            started = time.perf_counter()
            await asyncio.gather(*(_discard_upload(each, PER_CLIENT) for each in clients))
            many_bare = time.perf_counter() - started
            async with RssWatch(server.pid) as many_watch:
                started = time.perf_counter()
                await asyncio.gather(*(_upload(each, headers, PER_CLIENT, client_sha) for each in clients))
                many_real = time.perf_counter() - started
        finally:
            for each in clients:
                await each.aclose()
    finally:
        server.stop()
        shutil.rmtree(storage, ignore_errors=True)
        await drop_test_database(urls.database_url, database_url)

    s3 = await _s3_phase(urls)
    ratios = sorted(bare / real for bare, real in pairs)
    best_bare = min(bare for bare, _ in pairs)
    best_real = min(real for _, real in pairs)
    best = BestCase(
        client=min(client_cpu),
        server_receiving=min(bare for bare, _ in cpu),
        sha256=sha256_cpu,
        page_cache_write=write_cpu,
        cores=os.cpu_count() or 1,
    )
    total = CLIENTS * PER_CLIENT
    return Report(
        name="recording_uploads",
        title="recording-storage: large uploads over loopback",
        rows=[
            (
                "baseline: `POST /api/v1/uploads/bench-discard`, 1 GiB read and dropped (best of 2)",
                _speed(LARGE, best_bare),
            ),
            ("upload: 1 GiB video hashed and written, metadata, finish (best of 2)", _speed(LARGE, best_real)),
            ("upload ÷ baseline, each of 2 alternating pairs", ", ".join(f"{ratio:.2f}" for ratio in ratios)),
            (
                "server CPU time (all threads) per 1 GiB: baseline, upload (least of 2 each)",
                f"{min(bare for bare, _ in cpu):.2f} s, {min(real for _, real in cpu):.2f} s",
            ),
            (
                "client CPU time per 1 GiB sent to the discard route: the benchmark process, all threads (least of 2)",
                f"{best.client:.2f} s",
            ),
            (
                f"SHA-256 alone: the 1 GiB body in {server_chunk / 1024:,.0f} KiB pieces (the discard route's mean "
                "chunk), in memory, one stream on one core (CPU time, least of 2)",
                f"{_speed(LARGE, sha256_cpu)}; ÷ the baseline's rate: {best_bare / sha256_cpu:.2f}",
            ),
            (
                f"page-cache copy alone: the 1 GiB body written in {WRITE_BUFFER / MIB:g} MiB buffers to a new file "
                "beside the storage, no fsync (CPU time, least of 2)",
                f"{write_cpu:.2f} s",
            ),
            (
                f"**best case on this machine: upload ÷ baseline under perfect parallelism on {best.cores} cores "
                "(an upper bound, see the notes)**",
                f"{best_bare / best.seconds:.2f} (1 GiB in no less than {best.seconds:.2f} s)",
            ),
            ("upload: 100 MiB, the same sequence", _speed(SMALL, small_seconds)),
            ("server RSS: idle after a 16 MiB warm-up", _mib(idle_kib)),
            ("server peak RSS during the 100 MiB upload", _mib(small_watch.peak_kib)),
            ("server peak RSS during the 1 GiB uploads", _mib(large_peak)),
            (f"baseline: {CLIENTS} clients at once, 128 MiB each to the discard route", _speed(total, many_bare)),
            (f"{CLIENTS} clients at once, a 128 MiB upload each", _speed(total, many_real)),
            (f"{CLIENTS} clients: upload ÷ baseline", f"{many_bare / many_real:.2f}"),
            (f"server peak RSS during the {CLIENTS} concurrent uploads", _mib(many_watch.peak_kib)),
            (
                f"S3 (moto): baseline, {S3_SIZE // MIB} MiB to the discard route of the S3 app (best of {ROUNDS})",
                _speed(S3_SIZE, s3.best_bare),
            ),
            (
                f"S3 (moto): local-disk upload of {S3_SIZE // MIB} MiB alongside (best of {ROUNDS})",
                _speed(S3_SIZE, s3.best_local),
            ),
            (
                f"**S3 (moto): upload of {S3_SIZE // MIB} MiB in 16 MiB parts with checksums (best of {ROUNDS})**",
                _speed(S3_SIZE, s3.best_real),
            ),
            ("S3 (moto): upload ÷ baseline, each pair", ", ".join(f"{bare / real:.2f}" for bare, real in s3.pairs)),
            (
                f"S3 (moto): CPU time per {S3_SIZE // MIB} MiB upload (least of {ROUNDS}): app, moto",
                f"{s3.app_cpu:.2f} s, {s3.moto_cpu:.2f} s",
            ),
            ("S3 (moto): server peak RSS during the uploads", _mib(s3.peak_kib)),
        ],
        ratio=statistics.median(ratios),
        ratio_meaning="1 GiB upload rate ÷ discard rate, median of 2 pairs",
        target="≥ 0.6: hashing and writing should cost less than the transfer itself",
        notes=[
            "One uvicorn process on 127.0.0.1 and the httpx client in the benchmark process share the machine's "
            "cores (shared with other work while measured); storage is the local-disk backend on the machine's "
            "disk, each file fsynced before its offset is committed.",
            "The upload time covers the whole recorder sequence: create-session, the video, the metadata and the "
            "finish (which reuses the SHA-256 computed while the video was written, so it reads nothing again).",
            "Peak RSS is the server's resident memory sampled every 20 ms during each upload: flat between 100 MiB "
            "and 1 GiB, because bodies stream to disk in `RECORDING_STORAGE_WRITE_BUFFER_BYTES` buffers.",
            "The server's CPU time does not depend on what else the machine runs, unlike the rates: the upload's "
            "extra is mostly SHA-256 (one stream hashes on one core: SHA-256 alone, above) and the copy into the "
            "page cache; the baseline reads loopback at several hundred MiB/s to 2 GiB/s with the client "
            "on the same 2 cores, so the ratio falls as the machine gets quieter.",
            "The S3 figure is the second one the issue asks for, against moto's S3 server started by the benchmark: "
            "moto keeps every part in memory, checks each part's SHA-256 and assembles the object in Python on the "
            "same cores, so it measures the S3 path's own overhead (parts, checksums, part state in PostgreSQL, "
            "sealing at finish) against a slow local store, not the speed of a real one.",
            "The client's CPU time is `time.process_time()` of the benchmark process around each 1 GiB sent to the "
            "discard route: the httpx client on the event loop's thread, and nothing else runs in the process "
            "meanwhile. SHA-256 alone and the page-cache copy run in the benchmark process after the pairs, while "
            "the server is idle.",
            best.note(best_bare),
        ],
    )


@dataclass
class S3Figures:
    pairs: list[tuple[float, float]]
    best_bare: float
    best_real: float
    best_local: float
    app_cpu: float
    moto_cpu: float
    peak_kib: int


async def _s3_phase(urls: StackUrls) -> S3Figures:
    """The S3 backend against moto, alternating with the discard route and a local-disk upload of the same size."""
    sha256 = _sha256_of(S3_SIZE)
    database_url = await create_test_database(urls.database_url, prefix="mirante_bench")
    storage = Path(tempfile.mkdtemp(prefix="mirante-bench-recordings-"))
    moto_port = free_port()
    moto = _start_moto(moto_port)
    endpoint = f"http://127.0.0.1:{moto_port}"
    servers: list[ServiceServer] = []
    try:
        await _create_bucket(endpoint)
        s3_env = {
            **S3_CREDENTIALS,
            "RECORDING_STORAGE_BACKEND": "s3",
            "RECORDING_STORAGE_S3_BUCKET": S3_BUCKET,
            "RECORDING_STORAGE_S3_ENDPOINT_URL": endpoint,
            "RECORDING_STORAGE_S3_REGION": "us-east-1",
        }
        s3_server = _server(urls, database_url, storage, s3_env)
        servers.append(s3_server)
        local_server = _server(urls, database_url, storage)
        servers.append(local_server)
        headers = await _api_key(database_url)
        timeout = httpx.Timeout(600, connect=30)
        await s3_server.wait_ready()
        await local_server.wait_ready()
        async with (
            httpx.AsyncClient(base_url=s3_server.base_url, timeout=timeout) as on_s3,
            httpx.AsyncClient(base_url=local_server.base_url, timeout=timeout) as on_disk,
        ):
            await _upload(on_s3, headers, 16 * MIB, _sha256_of(16 * MIB))
            await _upload(on_disk, headers, 16 * MIB, _sha256_of(16 * MIB))
            pairs: list[tuple[float, float]] = []
            local: list[float] = []
            cpu: list[tuple[float, float]] = []
            peak = 0
            for _ in range(ROUNDS):
                local.append(await _upload(on_disk, headers, S3_SIZE, sha256))
                bare = (await _discard_upload(on_s3, S3_SIZE)).seconds
                app_before, moto_before = cpu_seconds(s3_server.pid), cpu_seconds(moto.pid)
                async with RssWatch(s3_server.pid) as watch:
                    real = await _upload(on_s3, headers, S3_SIZE, sha256)
                cpu.append((cpu_seconds(s3_server.pid) - app_before, cpu_seconds(moto.pid) - moto_before))
                peak = max(peak, watch.peak_kib)
                pairs.append((bare, real))
    finally:
        for server in servers:
            server.stop()
        moto.terminate()
        moto.wait(timeout=30)
        shutil.rmtree(storage, ignore_errors=True)
        await drop_test_database(urls.database_url, database_url)
    return S3Figures(
        pairs=pairs,
        best_bare=min(bare for bare, _ in pairs),
        best_real=min(real for _, real in pairs),
        best_local=min(local),
        app_cpu=min(app for app, _ in cpu),
        moto_cpu=min(used for _, used in cpu),
        peak_kib=peak,
    )
