"""Settings of telemetry-ingest: its own variables under `TELEMETRY_INGEST_`, the shared ones under `MIRANTE_`."""

from typing import Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from mirante.settings import ServiceSettings
from telemetry_ingest.options import BrokerSecret, RateText, Superusers


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TELEMETRY_INGEST_", env_file=".env", extra="ignore")

    port: int = Field(default=8002, ge=1, le=65535)

    default_retention_days: int = Field(
        default=365, ge=1, le=3650, description="days of readings a new tenant keeps unless told otherwise"
    )
    upgrade_tenants_on_start: bool = Field(
        default=True, description="bring every tenant schema to the newest tenant migration when the service starts"
    )

    export_max_rows: int = Field(
        default=1_000_000,
        ge=1,
        le=100_000_000,
        description="most rows one CSV export writes; a file cut there ends with a '# truncated:' line",
    )

    threshold_rule_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="how long a process keeps a tenant's threshold rules before reading them again (changes made "
        "through the same process apply at once; other replicas see them within this time)",
    )
    threshold_max_rules_per_tenant: int = Field(
        default=1000, ge=1, le=100_000, description="threshold rules a tenant may have (each costs evaluation time)"
    )
    retention_enabled: bool = Field(
        default=True, description="drop readings partitions older than each tenant's retention_days periodically"
    )
    retention_interval_seconds: float = Field(
        default=3600, ge=1, le=7 * 86400, description="seconds between two retention sweeps"
    )
    retention_initial_delay_seconds: float = Field(
        default=60, ge=0, le=86400, description="seconds after start before the first retention sweep"
    )
    retention_lock_timeout_seconds: float = Field(
        default=5,
        gt=0,
        le=600,
        description="how long a sweep waits for a tenant's readings table before giving up until the next sweep "
        "(dropping a partition briefly blocks that tenant's writes)",
    )

    broker_auth_secret: BrokerSecret = Field(
        default=None,
        description="shared secret the MQTT broker presents to /api/v1/mqtt/... (header X-Broker-Secret, or as the "
        "password of HTTP Basic auth); at least 16 characters. Unset: those endpoints answer 503",
    )
    broker_superusers: Superusers = Field(
        default_factory=dict,
        description="MQTT accounts the broker lets read and write every topic (the ingest service's own): "
        "'name:sha256hex' pairs, comma-separated, or a JSON object {name: sha256hex}",
    )
    broker_require_clientid_match: bool = Field(
        default=False,
        description="refuse a device whose MQTT client id is neither its device id nor its username",
    )
    broker_authn_failure_limit: RateText = Field(
        default="10/minute",
        description="failed broker logins allowed per username; beyond it every login of that username is refused",
    )

    mqtt_ingest_enabled: bool = Field(
        default=True, description="subscribe to the telemetry topics and store what devices publish"
    )
    mqtt_client_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="MQTT client id of this replica's persistent session; it must stay the same across restarts and "
        "differ between replicas (default: telemetry-ingest-<hostname>, stable where hostnames are, as in a "
        "StatefulSet; set it where they are not)",
    )
    mqtt_share_group: str | None = Field(
        default=None,
        pattern=r"^[^/+#\s]{1,64}$",
        description="shared-subscription group ($share/<group>/...): replicas in one group split the messages. "
        "Unset (the default): a plain subscription, the only mode whose queued readings survive a Mosquitto 2.0 "
        "restart; set it only on a broker that restores shared subscriptions after its own restart",
    )
    mqtt_receive_maximum: int = Field(
        default=5000,
        ge=1,
        le=65535,
        description="MQTT 5 Receive Maximum: messages the broker may send before the first is acknowledged; a "
        "few batches' worth lets the next batch arrive while one is being stored",
    )
    mqtt_stop_grace_seconds: float = Field(
        default=10.0, gt=0, le=300, description="on shutdown, how long a batch being stored may take to commit"
    )
    ingest_batch_size: int = Field(
        default=1000,
        ge=1,
        le=65535,
        description="MQTT messages stored per transaction at most (at most mqtt_receive_maximum)",
    )
    ingest_batch_interval_seconds: float = Field(
        default=0.1,
        gt=0,
        le=10,
        description="seconds after the first message of a batch when it is stored, full or not",
    )
    ingest_max_future_skew_seconds: int = Field(
        default=300,
        ge=0,
        le=7 * 86400,
        description="readings timestamped further than this ahead of the arrival time are rejected (device clock)",
    )
    ingest_max_readings_per_message: int = Field(
        default=1000, ge=1, le=100_000, description="readings one message may hold; a longer list is rejected whole"
    )
    ingest_reject_beyond_retention: bool = Field(
        default=True,
        description="reject readings older than the tenant's retention_days (the next sweep would drop them)",
    )
    ingest_tenant_cache_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="how long a process trusts a tenant row it has read (retention changes show within this time)",
    )
    ingest_max_body_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024, description="largest POST /ingest body (413 above)"
    )
    ingest_max_messages_per_request: int = Field(
        default=10_000, ge=1, le=1_000_000, description="messages one POST /ingest body may hold (413 above)"
    )

    @field_validator("mqtt_share_group", mode="before")
    @classmethod
    def _empty_share_group_is_none(cls, value: object) -> object:
        # `TELEMETRY_INGEST_MQTT_SHARE_GROUP=` (set but empty) means no group, as leaving it out does.
        return None if value == "" else value

    @model_validator(mode="after")
    def _batch_fits_receive_maximum(self) -> Self:
        if self.ingest_batch_size > self.mqtt_receive_maximum:
            raise ValueError(
                f"ingest_batch_size ({self.ingest_batch_size}) must not exceed mqtt_receive_maximum "
                f"({self.mqtt_receive_maximum}): the broker sends no more unacknowledged messages than that"
            )
        return self
