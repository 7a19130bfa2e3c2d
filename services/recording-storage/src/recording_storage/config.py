"""Settings of recording-storage: its own variables under `RECORDING_STORAGE_`, the shared ones under `MIRANTE_`."""

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from mirante.settings import ServiceSettings

S3_MAX_PARTS = 10_000
"""S3's limit of parts in one multipart upload."""
GIB = 1024**3
MIB = 1024**2


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RECORDING_STORAGE_", env_file=".env", extra="ignore")

    port: int = Field(default=8005, ge=1, le=65535)

    backend: Literal["local", "s3"] = Field(
        default="local",
        description="where bytes are kept: `local` (a folder, see storage_dir) or `s3` (an S3-compatible bucket; "
        "credentials come from the standard AWS variables, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or a "
        "profile or an instance role, never from these settings)",
    )
    s3_bucket: str | None = Field(
        default=None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", description="bucket of the s3 backend (required)"
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description="endpoint of an S3-compatible store (MinIO, Ceph, ...); unset: AWS",
    )
    s3_region: str | None = Field(
        default=None, description="region of the bucket; unset: AWS_REGION / AWS_DEFAULT_REGION or the profile's"
    )
    s3_part_size_bytes: int = Field(
        default=16 * MIB,
        ge=5 * MIB,
        le=5 * GIB,
        description="size of each multipart part (S3 needs at least 5 MiB but for the last; at most 10,000 parts "
        "per object); an upload in progress holds up to one part in memory",
    )
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
        description="body bytes gathered before one write in a worker thread",
    )
    retention_days: int | None = Field(
        default=None,
        ge=1,
        le=36500,
        description="recordings older than this many days (by upload time) are deleted; unset: kept forever",
    )
    content_url_secret: SecretStr | None = Field(
        default=None,
        min_length=32,
        description="key of the signed content URLs the player uses (replicas must share it); unset: derived from "
        "MIRANTE_JWT_SECRET under HS256, else a random key per process (URLs then open only on the replica that "
        "issued them)",
    )
    content_url_ttl_seconds: int = Field(
        default=900,
        ge=10,
        le=86400,
        description="how long a signed content URL opens its file; the player asks for a new one when it expires",
    )
    sweep_enabled: bool = Field(default=True, description="run the sweeper (expired sessions, retention)")
    sweep_interval_seconds: float = Field(default=300, ge=1, le=86400, description="seconds between two sweeps")
    sweep_initial_delay_seconds: float = Field(
        default=30, ge=0, le=86400, description="seconds after start before the first sweep"
    )
    sweep_batch_size: int = Field(default=100, ge=1, le=10_000, description="sessions or recordings per transaction")

    @model_validator(mode="after")
    def _s3_complete(self) -> Self:
        if self.backend == "s3":
            if self.s3_bucket is None:
                raise ValueError("RECORDING_STORAGE_S3_BUCKET is required with RECORDING_STORAGE_BACKEND=s3")
            # The largest file has to fit in S3's 10,000 parts (the last one carrying the tail).
            if self.max_video_bytes > (S3_MAX_PARTS - 1) * self.s3_part_size_bytes:
                raise ValueError(
                    "RECORDING_STORAGE_S3_PART_SIZE_BYTES is too small for RECORDING_STORAGE_MAX_VIDEO_BYTES"
                )
        return self

    def resolved_content_url_secret(self) -> str | None:
        """The key material of signed content URLs: its own setting, else the suite's shared JWT secret."""
        if self.content_url_secret is not None:
            return self.content_url_secret.get_secret_value()
        jwt = self.infra.jwt
        return jwt.secret.get_secret_value() if jwt.algorithm == "HS256" else None

    def resolved_storage_dir(self) -> Path:
        """The storage folder: `storage_dir`, else `recordings` under the suite's data folder."""
        return self.storage_dir or self.infra.core.data_dir / "recordings"
