"""Settings of cvat-sync: its own variables under `CVAT_SYNC_`, the shared ones under `MIRANTE_`."""

from functools import cached_property

from limits import RateLimitItem, parse
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from mirante.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CVAT_SYNC_", env_file=".env", extra="ignore")

    port: int = Field(default=8001, ge=1, le=65535)

    cvat_url: str = Field(default="http://127.0.0.1:8080", description="CVAT server base URL (API calls)")
    cvat_public_url: str | None = Field(default=None, description="base URL for links users open; cvat_url if unset")
    cvat_token: SecretStr | None = Field(default=None, description="personal access token (Bearer)")
    cvat_legacy_token: SecretStr | None = Field(default=None, description="legacy token (`Token <key>`)")
    cvat_username: str | None = None
    cvat_password: SecretStr | None = None
    cvat_organization: str | None = Field(default=None, description="organization slug sent as X-Organization")
    cvat_page_size: int = Field(default=100, ge=1, le=1000)
    cvat_timeout_seconds: float = Field(default=30.0, gt=0)
    cvat_max_retries: int = Field(default=5, ge=0, le=20)
    cvat_concurrency: int = Field(default=8, ge=1, le=64, description="parallel annotation-count requests")
    sync_write_batch: int = Field(default=200, ge=1, le=5000)

    recount_delay_seconds: float = Field(
        default=2.0,
        ge=0,
        le=300,
        description="a webhook's annotation recount waits this long, so a burst of webhooks for a job costs one",
    )
    recount_concurrency: int = Field(default=4, ge=1, le=64, description="recounts in flight at once")
    recount_timeout_seconds: float = Field(default=60.0, gt=0, description="a recount taking longer is given up")

    webhook_secret: SecretStr = SecretStr("")
    webhook_max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    webhook_rejected_rate_limit: str = Field(
        default="60/minute",
        description="webhook requests whose signature does not verify, per source address (e.g. 60/minute)",
    )

    @field_validator("webhook_rejected_rate_limit")
    @classmethod
    def _a_rate(cls, value: str) -> str:
        try:
            parse(value)
        except ValueError:
            raise ValueError(f"not a rate such as 60/minute: {value!r}") from None
        return value

    @cached_property
    def webhook_rejected_rate(self) -> RateLimitItem:
        return parse(self.webhook_rejected_rate_limit)

    @property
    def link_base(self) -> str:
        return (self.cvat_public_url or self.cvat_url).rstrip("/")
