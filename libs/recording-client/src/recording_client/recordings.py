"""Local recordings: pairing a video with its metadata file, the create-session body, hashing, folder scans."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".webm", ".avi"})
CONNECTION_FIELDS = (
    "con_codigo",
    "ip",
    "name",
    "user",
    "connection_type",
    "wats_user",
    "wats_user_machine",
    "wats_user_ip",
)
_HASH_BLOCK = 1024 * 1024
_SESSION_PREFIX = re.compile(r"^(session_[^_]+)_")


@dataclass(frozen=True)
class LocalRecording:
    video: Path
    metadata: Path | None


def find_metadata(video: Path) -> Path | None:
    """The metadata file WATS wrote beside `video`: `<stem>.json`, `<stem>_metadata.json`, or, for
    `session_123_Server_20241026_150000.mp4`, `session_123_metadata.json`."""
    candidates = [video.with_suffix(".json"), video.with_name(f"{video.stem}_metadata.json")]
    match = _SESSION_PREFIX.match(video.stem)
    if match:
        candidates.append(video.with_name(f"{match.group(1)}_metadata.json"))
    return next((c for c in candidates if c.is_file()), None)


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read a block at a time (run it in a thread: large files take seconds)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def read_metadata(path: Path | None) -> dict[str, Any]:
    """The metadata document, or {} when there is none or it is not a JSON object (the server validates it)."""
    if path is None:
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def build_session_request(
    video: Path,
    metadata: Mapping[str, Any],
    *,
    file_size: int,
    sha256: str | None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The body of `POST /uploads/create-session`, from WATS's metadata file where it has the fields.

    The metadata file may hold the contract's shape itself (`session_id`, `connection_info`, `metadata`) or
    the same fields at its top level; what is missing comes from the video file (its name, its time).
    """
    nested = metadata.get("metadata") if isinstance(metadata.get("metadata"), Mapping) else {}
    assert isinstance(nested, Mapping)
    connection = metadata.get("connection_info")
    if not isinstance(connection, Mapping):
        connection = {key: metadata[key] for key in CONNECTION_FIELDS if key in metadata}
    start_time = nested.get("start_time") or metadata.get("start_time")
    if not start_time:
        start_time = datetime.fromtimestamp(video.stat().st_mtime, UTC).isoformat()
    settings = nested.get("recorder_settings") or metadata.get("recorder_settings") or {}
    request: dict[str, Any] = {
        "session_id": str(metadata.get("session_id") or video.stem),
        "connection_info": dict(connection),
        "file_size": file_size,
        "metadata": {"start_time": start_time, "recorder_settings": dict(settings)},
    }
    if sha256 is not None:
        request["sha256"] = sha256
    for key, value in (overrides or {}).items():
        if isinstance(value, Mapping) and isinstance(request.get(key), dict):
            request[key] = {**request[key], **value}
        else:
            request[key] = value
    return request


def scan_recordings(
    directory: Path, *, max_age_days: float, now: datetime, min_quiet_seconds: float = 0
) -> list[LocalRecording]:
    """Finished recordings in `directory`, oldest first: videos with a metadata file, modified at most
    `max_age_days` ago and not within the last `min_quiet_seconds` (a recording still being written)."""
    found = []
    timestamp = now.timestamp()
    for path in directory.iterdir():
        if path.suffix.lower() not in VIDEO_SUFFIXES or not path.is_file():
            continue
        modified = path.stat().st_mtime
        age = timestamp - modified
        if age > max_age_days * 86400 or age < min_quiet_seconds:
            continue
        metadata = find_metadata(path)
        if metadata is None:
            continue
        found.append((modified, LocalRecording(path, metadata)))
    return [recording for _, recording in sorted(found, key=lambda item: (item[0], str(item[1].video)))]
