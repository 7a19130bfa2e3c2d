"""Settings of cvat-sync: its own variables under `CVAT_SYNC_`, the shared ones under `MIRANTE_`."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mirante.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CVAT_SYNC_", env_file=".env", extra="ignore")

    port: int = Field(default=8001, ge=1, le=65535)
