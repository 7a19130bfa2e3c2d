"""Settings of rtls-cambus: its own variables under `RTLS_CAMBUS_`, the shared ones under `MIRANTE_`."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mirante.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RTLS_CAMBUS_", env_file=".env", extra="ignore")

    port: int = Field(default=8004, ge=1, le=65535)
