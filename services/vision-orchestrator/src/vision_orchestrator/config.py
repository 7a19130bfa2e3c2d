"""Settings of vision-orchestrator: its own variables under `VISION_ORCHESTRATOR_`, the shared ones under `MIRANTE_`."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mirante.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VISION_ORCHESTRATOR_", env_file=".env", extra="ignore")

    port: int = Field(default=8003, ge=1, le=65535)
    dashboard_window_minutes: int = Field(
        default=60, ge=1, le=7 * 24 * 60, description="the recent window of the dashboard's performance figures"
    )
