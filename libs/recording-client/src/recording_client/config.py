"""The `api` section of WATS's `config.json`, plus the few keys this client adds (all optional)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from recording_client.schedule import UploadWindow

DEFAULT_STATE_FILE = Path.home() / ".recording-upload" / "state.json"


class ConfigError(ValueError):
    """config.json is unreadable or a value in it has the wrong type."""


@dataclass
class ApiConfig:
    # The seed's keys, with its defaults.
    enabled: bool = False
    base_url: str = ""
    api_token: str = ""
    auto_upload: bool = False
    upload_timeout: float = 60
    max_retries: int = 3
    max_concurrent_uploads: int = 2
    delete_after_upload: bool = False
    upload_older_recordings: bool = True
    max_file_age_days: int = 30
    # Added by this client.
    bandwidth_limit_mbps: float | None = None
    upload_window: UploadWindow | None = None
    state_file: Path = DEFAULT_STATE_FILE
    chunk_size_kb: int = 1024
    # `recording.output_dir` of the same file: where WATS writes recordings.
    recordings_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def bandwidth_limit_bytes(self) -> float | None:
        """The limit in bytes per second (the config speaks megabits, as connections are sold)."""
        if self.bandwidth_limit_mbps is None:
            return None
        return self.bandwidth_limit_mbps * 1_000_000 / 8

    @classmethod
    def from_dict(cls, api: dict[str, Any], *, base_dir: Path | None = None) -> ApiConfig:
        """From the `api` section; relative paths are read from `base_dir` (the config file's folder)."""
        if not isinstance(api, dict):
            raise ConfigError("the `api` section must be an object")
        known = {f.name for f in fields(cls)} - {"extra", "upload_window", "state_file", "recordings_dir"}
        values: dict[str, Any] = {}
        for name in known:
            if name in api:
                values[name] = _checked(name, api[name])
        config = cls(**values, extra={k: v for k, v in api.items() if k not in known})
        if api.get("upload_window") is not None:
            try:
                config.upload_window = UploadWindow.from_config(api["upload_window"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigError(f"api.upload_window: {exc}") from exc
        if api.get("state_file"):
            config.state_file = _resolve(Path(str(api["state_file"])), base_dir)
        elif base_dir is not None:
            config.state_file = base_dir / "upload-state.json"
        if config.max_concurrent_uploads < 1:
            raise ConfigError("api.max_concurrent_uploads must be at least 1")
        if config.max_retries < 0:
            raise ConfigError("api.max_retries must not be negative")
        if config.bandwidth_limit_mbps is not None and config.bandwidth_limit_mbps <= 0:
            raise ConfigError("api.bandwidth_limit_mbps must be positive")
        if config.chunk_size_kb < 1:
            raise ConfigError("api.chunk_size_kb must be at least 1")
        config.base_url = config.base_url.rstrip("/")
        return config

    @classmethod
    def load(cls, path: Path) -> ApiConfig:
        """From a WATS `config.json`: its `api` section, and `recording.output_dir` as the recordings folder."""
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc
        if not isinstance(document, dict):
            raise ConfigError(f"{path} must hold a JSON object")
        base_dir = path.resolve().parent
        config = cls.from_dict(document.get("api", {}), base_dir=base_dir)
        recording = document.get("recording")
        if isinstance(recording, dict) and recording.get("output_dir"):
            config.recordings_dir = _resolve(Path(str(recording["output_dir"])), base_dir)
        return config


_TYPES: dict[str, tuple[type, ...]] = {
    "enabled": (bool,),
    "base_url": (str,),
    "api_token": (str,),
    "auto_upload": (bool,),
    "upload_timeout": (int, float),
    "max_retries": (int,),
    "max_concurrent_uploads": (int,),
    "delete_after_upload": (bool,),
    "upload_older_recordings": (bool,),
    "max_file_age_days": (int, float),
    "bandwidth_limit_mbps": (int, float, type(None)),
    "chunk_size_kb": (int,),
}


def _checked(name: str, value: Any) -> Any:
    expected = _TYPES[name]
    # bool is an int in Python; a `true` where a number belongs is a mistake in the file.
    if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
        names = " or ".join("null" if t is type(None) else t.__name__ for t in expected)
        raise ConfigError(f"api.{name} must be {names}, got {value!r}")
    return value


def _resolve(path: Path, base_dir: Path | None) -> Path:
    path = path.expanduser()
    if base_dir is not None and not path.is_absolute():
        return base_dir / path
    return path
