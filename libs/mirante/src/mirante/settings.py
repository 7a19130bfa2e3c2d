"""Settings pieces shared by every service.

Each piece reads its own `MIRANTE_*` variables; a service's `Settings` composes them and adds fields under its
own prefix. Nothing is instantiated at import: apps and commands build settings when they start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_JWT_SECRET = "mirante-development-secret-change-me-0123456789"  # refused in production


class SettingsError(ValueError):
    """A configuration value is missing or unsafe."""


def _config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, env_file=".env", extra="ignore")


class CoreSettings(BaseSettings):
    """`MIRANTE_ENV`, `MIRANTE_DATA_DIR` and the suite-wide web options."""

    model_config = _config("MIRANTE_")

    env: Literal["development", "production"] = "development"
    data_dir: Path = Path(".mirante")
    log_level: str = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"
    cors_origins: list[str] = Field(default_factory=list)
    signup_enabled: bool = False
    default_page_size: int = Field(default=50, ge=1, le=1000)
    max_page_size: int = Field(default=200, ge=1, le=10000)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    login_rate_limit: str = "10/minute"
    # scrypt work at once per process and callers allowed to wait for it; beyond that a login gets 503.
    password_hash_concurrency: int = Field(default=2, ge=1, le=64)
    password_hash_queue: int = Field(default=32, ge=0, le=10_000)
    # Comma-separated addresses (or CIDRs, or "*") of the proxies whose X-Forwarded-For/-Proto headers are
    # believed; empty: none, so the socket peer is the client.
    forwarded_allow_ips: str = ""
    # When set, /metrics needs `Authorization: Bearer <token>`; unset, /metrics is open in development and
    # answers 404 in production.
    metrics_token: SecretStr | None = None
    # Port of the mail sink `mirante up` runs when no mail server is configured (MIRANTE_SMTP_HOST unset).
    smtp_sink_port: int = Field(default=18025, ge=1, le=65535)

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def json_logs(self) -> bool:
        return self.log_format == "json" or (self.log_format == "auto" and self.production)


class DatabaseSettings(BaseSettings):
    """`MIRANTE_DATABASE_URL` and pool options. Without a URL the dev stack provides one."""

    model_config = _config("MIRANTE_DATABASE_")

    url: str | None = None
    # A fixed pool, grown on demand up to its size and kept: overflow connections are closed whenever the pool
    # has `pool_size` idle ones, and under bursty load (commits finish together) that means a new connection,
    # its type introspection and every statement prepared again, many times a second.
    pool_size: int = Field(default=20, ge=1)
    max_overflow: int = Field(default=0, ge=0)
    pool_recycle_seconds: int = Field(default=1800, ge=1)
    echo: bool = False


class RedisSettings(BaseSettings):
    """`MIRANTE_REDIS_URL` (redis://… or unix://…)."""

    model_config = _config("MIRANTE_REDIS_")

    url: str | None = None
    rate_limit_pool_size: int = Field(default=20, ge=1, le=1000)


class MqttSettings(BaseSettings):
    """`MIRANTE_MQTT_URL` (mqtt://[user:password@]host:port)."""

    model_config = _config("MIRANTE_MQTT_")

    url: str | None = None
    protocol: Literal["5", "3.1.1"] = "5"
    session_expiry_seconds: int = Field(default=7 * 24 * 3600, ge=0)
    receive_maximum: int = Field(default=1000, ge=1, le=65535)


SmtpSecurity = Literal["starttls", "tls", "none"]
_DEFAULT_SMTP_PORTS: dict[str, int] = {"starttls": 587, "tls": 465, "none": 25}


class SmtpSettings(BaseSettings):
    """`MIRANTE_SMTP_*`: the mail server the suite sends mail through. Without a host no mail is sent.

    `security`: `starttls` (plain connection upgraded with STARTTLS, which must succeed; port 587 by default),
    `tls` (TLS from the first byte, port 465 by default) or `none` (plain text, for a local relay or sink).
    """

    model_config = _config("MIRANTE_SMTP_")

    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    security: SmtpSecurity = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    validate_certs: bool = True

    @property
    def configured(self) -> bool:
        return bool(self.host)

    @property
    def effective_port(self) -> int:
        """The port given, else the usual one for `security`."""
        return self.port if self.port is not None else _DEFAULT_SMTP_PORTS[self.security]


class JwtSettings(BaseSettings):
    """Token signing. One algorithm is pinned per deployment: HS256 with a secret, or RS256 with key files."""

    model_config = _config("MIRANTE_JWT_")

    algorithm: Literal["HS256", "RS256"] = "HS256"
    secret: SecretStr = SecretStr(DEFAULT_JWT_SECRET)
    private_key_file: Path | None = None
    public_key_file: Path | None = None
    key_id: str = "mirante-1"
    issuer: str = "mirante"
    audience: str = "mirante"
    access_token_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    leeway_seconds: int = Field(default=30, ge=0, le=60)

    @model_validator(mode="after")
    def _keys_match_algorithm(self) -> JwtSettings:
        if self.algorithm == "RS256" and self.public_key_file is None:
            raise ValueError("MIRANTE_JWT_ALGORITHM=RS256 needs MIRANTE_JWT_PUBLIC_KEY_FILE")
        if self.algorithm == "HS256" and len(self.secret.get_secret_value()) < 32:
            raise ValueError("MIRANTE_JWT_SECRET must be at least 32 characters")
        return self


class InfraSettings(BaseSettings):
    """Everything a Mirante process needs to reach its infrastructure, in one object."""

    model_config = _config("MIRANTE_")

    core: CoreSettings = Field(default_factory=CoreSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    jwt: JwtSettings = Field(default_factory=JwtSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)

    def check_production(self) -> None:
        """Refuse the development defaults when `MIRANTE_ENV=production`."""
        if not self.core.production:
            return
        problems = []
        if self.jwt.algorithm == "HS256" and self.jwt.secret.get_secret_value() == DEFAULT_JWT_SECRET:
            problems.append("MIRANTE_JWT_SECRET still has its development default")
        for name, url in (
            ("MIRANTE_DATABASE_URL", self.database.url),
            ("MIRANTE_REDIS_URL", self.redis.url),
        ):
            if not url:
                problems.append(f"{name} must be set in production")
        metrics_token = self.core.metrics_token.get_secret_value() if self.core.metrics_token else ""
        if 0 < len(metrics_token) < 32:
            problems.append("MIRANTE_METRICS_TOKEN must be at least 32 characters")
        if problems:
            raise SettingsError("; ".join(problems))


class ServiceSettings(BaseSettings):
    """Base of each service's `Settings`; subclasses set `env_prefix` (e.g. `CVAT_SYNC_`)."""

    model_config = _config("MIRANTE_SERVICE_")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)
    infra: InfraSettings = Field(default_factory=InfraSettings)
