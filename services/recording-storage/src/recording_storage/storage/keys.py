"""Storage keys: made here from server-generated ids only, so no client text ever names a file."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final, Literal

FileKind = Literal["video", "metadata"]
FILE_KINDS: Final[tuple[FileKind, ...]] = ("video", "metadata")
EXTENSIONS: Final[dict[FileKind, str]] = {"video": "mp4", "metadata": "json"}

KEY_PATTERN: Final = re.compile(r"[a-z0-9_-]+(/[a-z0-9_-]+)*(\.[a-z0-9]+)?")
"""Every key the server makes: lower-case segments, no dots but the extension's, so never `..`."""


def part_key(session_id: str, kind: str) -> str:
    """Where the partial upload of one file of a session is appended to."""
    return f"uploads/{session_id}/{kind}"


def recording_key(recording_id: str, kind: FileKind, created_at: datetime) -> str:
    """Where a finished recording's file lives: grouped by month so no folder grows without bound."""
    return f"recordings/{created_at:%Y/%m}/{recording_id}/{kind}.{EXTENSIONS[kind]}"


def is_valid_key(key: str) -> bool:
    return KEY_PATTERN.fullmatch(key) is not None
