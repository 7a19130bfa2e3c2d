"""Settings of recording-storage: its own variables under `RECORDING_STORAGE_`, the shared ones under `MIRANTE_`."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mirante.settings import ServiceSettings

GIB = 1024**3
MIB = 1024**2


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RECORDING_STORAGE_", env_file=".env", extra="ignore")

    port: int = Field(default=8005, ge=1, le=65535)

    storage_dir: Path | None = Field(
        default=None,
        description="folder of the local-disk storage backend (default: <MIRANTE_DATA_DIR>/recordings); partial "
        "uploads and finished recordings live under it, on one file system so that finishing is a rename",
    )
    public_base_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="scheme, host and optional path prefix clients reach this service at, used to build the upload "
        "URLs a session answers (behind a proxy); unset: taken from the request (its Host header)",
    )
    max_video_bytes: int = Field(
        default=8 * GIB, ge=1, le=5 * 1024 * GIB, description="largest video a session may declare (413 above)"
    )
    max_metadata_bytes: int = Field(
        default=4 * MIB, ge=1024, le=256 * MIB, description="largest metadata file a session may receive (413 above)"
    )
    session_ttl_seconds: int = Field(
        default=24 * 3600,
        ge=60,
        le=30 * 86400,
        description="how long an upload session lives after it is created; then its partial data is removed and "
        "its requests answer 410 (the client starts a new session)",
    )
    upload_idle_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="an upload request that receives nothing for this long is ended, keeping what arrived (a "
        "half-open connection must not hold the file's lock)",
    )
    upload_lease_seconds: float = Field(
        default=30.0,
        ge=1,
        le=3600,
        description="how long a request's claim on a file lasts unless renewed (it is renewed every third of "
        "this while bytes arrive); a replica that dies mid-upload blocks its file this long at most",
    )
    write_buffer_bytes: int = Field(
        default=1 * MIB,
        ge=64 * 1024,
        le=64 * MIB,
        description="body bytes gathered before one write (and hash update) in a worker thread",
    )
    retention_days: int | None = Field(
        default=None,
        ge=1,
        le=36500,
        description="recordings older than this many days (by upload time) are deleted; unset: kept forever",
    )
    sweep_enabled: bool = Field(default=True, description="run the sweeper (expired sessions, retention)")
    sweep_interval_seconds: float = Field(default=300, ge=1, le=86400, description="seconds between two sweeps")
    sweep_initial_delay_seconds: float = Field(
        default=30, ge=0, le=86400, description="seconds after start before the first sweep"
    )
    sweep_batch_size: int = Field(default=100, ge=1, le=10_000, description="sessions or recordings per transaction")

    def resolved_storage_dir(self) -> Path:
        """The storage folder: `storage_dir`, else `recordings` under the suite's data folder."""
        return self.storage_dir or self.infra.core.data_dir / "recordings"
