"""Settings of vision-orchestrator: its own variables under `VISION_ORCHESTRATOR_`, the shared ones under `MIRANTE_`."""

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from mirante.settings import ServiceSettings
from mirante.web.ratelimit import parse_rate

Strategy = Literal["load_balanced", "nearest", "specialized"]


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VISION_ORCHESTRATOR_", env_file=".env", extra="ignore")

    port: int = Field(default=8003, ge=1, le=65535)

    machine_offline_after_seconds: float = Field(
        default=30, ge=1, le=86400, description="a machine without a heartbeat for this long turns offline"
    )
    presence_check_interval_seconds: float = Field(
        default=5, gt=0, le=3600, description="seconds between two checks for machines whose heartbeats stopped"
    )
    heartbeat_retention_days: int = Field(
        default=30, ge=1, le=3650, description="days of heartbeats kept; older day partitions are dropped"
    )
    heartbeat_partitions_ahead_days: int = Field(
        default=3, ge=1, le=60, description="day partitions of heartbeats created ahead of today"
    )
    heartbeat_maintenance_interval_seconds: float = Field(
        default=3600, gt=0, le=86400, description="seconds between two runs of partition creation and retention"
    )
    webhook_signature_tolerance_seconds: float = Field(
        default=300, ge=1, le=3600, description="how far a signed webhook's timestamp may lie from now"
    )
    user_rate_limit: str | None = Field(
        default="1000/hour", description="requests per user or API key on the user API (none: unlimited)"
    )

    public_url: str = Field(
        default="http://127.0.0.1:8003",
        description="the orchestrator's base URL as machines reach it; the callbacks sent with each inspection",
    )

    dispatcher_enabled: bool = Field(default=True, description="run the automatic dispatcher in this replica")
    dispatch_strategy: Strategy = Field(default="load_balanced", description="the strategy the dispatcher uses")
    dispatch_interval_seconds: float = Field(
        default=5.0, gt=0, description="the periodic pass, besides the wake-ups on freed capacity and new work"
    )
    dispatch_batch_size: int = Field(default=50, ge=1, le=1000, description="inspections claimed per transaction")
    dispatch_retry_base_seconds: float = Field(default=1.0, ge=0, description="backoff after a failed send")
    dispatch_retry_cap_seconds: float = Field(default=60.0, gt=0)
    delivery_timeout_seconds: float = Field(
        default=60.0, gt=0, description="an inspection still `assigned` (no answer recorded) this long is sent again"
    )
    offline_requeue_grace_seconds: float = Field(
        default=60.0, ge=0, description="work on a machine offline this long goes back to the queue"
    )
    machine_connect_timeout_seconds: float = Field(default=1.0, gt=0)
    machine_read_timeout_seconds: float = Field(default=3.0, gt=0)
    listen_retry_base_seconds: float = Field(default=0.5, gt=0, description="reconnecting the LISTEN connection")
    listen_retry_cap_seconds: float = Field(default=30.0, gt=0)
    default_processing_seconds: float = Field(
        default=30.0, gt=0, description="the queue's estimate for a type with no measured processing time yet"
    )

    dashboard_window_minutes: int = Field(
        default=60, ge=1, le=7 * 24 * 60, description="the recent window of the dashboard's performance figures"
    )

    @field_validator("user_rate_limit")
    @classmethod
    def _readable_rate(cls, value: str | None) -> str | None:
        if value is None or value.strip().lower() in {"", "none", "unlimited"}:
            return None
        parse_rate(value)
        return value
