"""Settings of vision-orchestrator: its own variables under `VISION_ORCHESTRATOR_`, the shared ones under `MIRANTE_`."""

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mirante.settings import ServiceSettings

Strategy = Literal["load_balanced", "nearest", "specialized"]


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VISION_ORCHESTRATOR_", env_file=".env", extra="ignore")

    port: int = Field(default=8003, ge=1, le=65535)
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
