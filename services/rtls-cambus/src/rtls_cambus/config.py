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

    # The position engine; why these defaults: docs/rtls-cambus.md, "Positions and presence".
    position_alpha_rise: float = Field(
        default=0.5, gt=0, le=1, description="EWMA weight of a reading stronger than the smoothed level"
    )
    position_alpha_fall: float = Field(
        default=0.2, gt=0, le=1, description="EWMA weight of a reading weaker than the smoothed level"
    )
    position_fresh_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="a gateway that has not heard a tag for longer no longer counts"
    )
    position_margin_db: float = Field(
        default=6.0, ge=0, le=60, description="how much stronger another gateway must be to take the tag over"
    )
    position_dwell_seconds: float = Field(
        default=5.0, ge=0, le=600, description="how long it must stay that much stronger"
    )
    position_sweep_seconds: float = Field(
        default=5.0, gt=0, le=600, description="how often tags gone silent are marked unknown"
    )
    feed_ticket_seconds: int = Field(default=60, ge=5, le=3600, description="life of a live feed ticket")
    feed_max_seconds: int = Field(
        default=900,
        ge=10,
        le=86_400,
        description="a live feed connection is closed after this long (the page "
        "reconnects with a new ticket, so a revoked account stops receiving)",
    )
