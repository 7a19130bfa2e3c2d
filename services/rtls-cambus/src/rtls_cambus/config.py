"""Settings of rtls-cambus: its own variables under `RTLS_CAMBUS_`, the shared ones under `MIRANTE_`."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mirante.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="RTLS_CAMBUS_", env_file=".env", extra="ignore")

    port: int = Field(default=8004, ge=1, le=65535)
    floor_plan_max_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024, description="largest floor plan image accepted"
    )
    floor_plan_max_side_px: int = Field(
        default=20_000, ge=16, le=65_535, description="largest width or height of a floor plan, in pixels"
    )
    floor_plan_max_pixels: int = Field(
        default=100_000_000,
        ge=256,
        description="largest width x height of a floor plan: a browser decodes the whole image to draw it",
    )
