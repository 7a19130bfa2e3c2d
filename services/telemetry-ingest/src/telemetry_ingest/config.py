"""Settings of telemetry-ingest: its own variables under `TELEMETRY_INGEST_`, the shared ones under `MIRANTE_`."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mirante.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TELEMETRY_INGEST_", env_file=".env", extra="ignore")

    port: int = Field(default=8002, ge=1, le=65535)
