"""Settings of recording-storage: its own variables under `RECORDING_STORAGE_`, the shared ones under `MIRANTE_`."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mirante.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RECORDING_STORAGE_", env_file=".env", extra="ignore")

    port: int = Field(default=8005, ge=1, le=65535)
