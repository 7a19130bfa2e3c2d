"""Settings of vision-orchestrator: its own variables under `VISION_ORCHESTRATOR_`, the shared ones under `MIRANTE_`."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mirante.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VISION_ORCHESTRATOR_", env_file=".env", extra="ignore")

    port: int = Field(default=8003, ge=1, le=65535)
