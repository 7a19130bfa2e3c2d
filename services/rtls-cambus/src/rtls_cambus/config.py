"""Settings of rtls-cambus: its own variables under `RTLS_CAMBUS_`, the shared ones under `MIRANTE_`."""

import email.utils
from functools import cached_property
from typing import Self

from limits import RateLimitItem
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from mirante.settings import ServiceSettings
from mirante.web.ratelimit import parse_rate

LINK_PLACEHOLDER = "{id}"


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

    mqtt_ingest_enabled: bool = Field(
        default=True, description="subscribe to the gateway and CAM-BUS topics and store what they publish"
    )
    mqtt_client_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="MQTT client id of this replica's persistent session; it must stay the same across restarts and "
        "differ between replicas (default: rtls-cambus-<hostname>)",
    )
    mqtt_share_group: str | None = Field(
        default=None,
        pattern=r"^[^/+#\s]{1,64}$",
        description="shared-subscription group ($share/<group>/...): replicas in one group split the messages. "
        "Unset (the default): a plain subscription, the only mode whose queued messages survive a Mosquitto 2.0 "
        "restart",
    )
    mqtt_receive_maximum: int = Field(
        default=2000, ge=1, le=65535, description="MQTT 5 Receive Maximum: unacknowledged messages the broker may send"
    )
    mqtt_stop_grace_seconds: float = Field(
        default=10.0, gt=0, le=300, description="on shutdown, how long a batch being stored may take to commit"
    )
    ingest_batch_size: int = Field(
        default=1000,
        ge=1,
        le=65535,
        description="MQTT messages stored per transaction at most; half the Receive Maximum keeps the next batch "
        "arriving while one is stored",
    )
    ingest_batch_interval_seconds: float = Field(
        default=0.1, gt=0, le=10, description="seconds after the first message of a batch when it is stored"
    )
    ingest_max_readings_per_message: int = Field(
        default=500, ge=1, le=100_000, description="beacon readings one message may hold; a longer list is rejected"
    )
    cambus_tenant: str | None = Field(
        default=None,
        pattern=r"^[^/+#\s]{1,64}$",
        description="subscribe to this CAM-BUS tenant only (rtls/cameras/<tenant>/#); unset: every tenant",
    )
    command_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, description="how long a camera command waits for the broker's acknowledgement"
    )
    gateway_offline_after_seconds: float = Field(
        default=60, ge=1, le=86400, description="a gateway without any message for this long turns offline"
    )
    presence_check_interval_seconds: float = Field(
        default=5, gt=0, le=3600, description="seconds between two checks for gateways that went silent"
    )
    reading_retention_days: int = Field(
        default=30, ge=1, le=3650, description="days of gateway readings (collection logs) kept; older days dropped"
    )
    rejected_retention_days: int = Field(
        default=14, ge=1, le=3650, description="days rejected messages are kept for inspection"
    )
    reading_partitions_ahead_days: int = Field(
        default=3, ge=1, le=60, description="day partitions of gateway readings created ahead of today"
    )
    maintenance_interval_seconds: float = Field(
        default=3600, gt=0, le=86400, description="seconds between two partition and retention maintenance runs"
    )

    webhook_dispatch_enabled: bool = Field(
        default=True, description="consume the suite's event streams and deliver them to webhook subscriptions"
    )
    webhook_streams: list[str] | None = Field(
        default=None, description="streams the dispatcher reads; unset: events:<name> of every installed service"
    )
    webhook_timeout_seconds: float = Field(default=15, gt=0, le=60, description="one delivery attempt at most")
    webhook_retry_schedule_seconds: list[float] = Field(
        default=[5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400],
        min_length=1,
        max_length=50,
        description="longest wait before each retry (full jitter draws below it); its length is the number of retries",
    )
    webhook_delivery_retention_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="days a finished webhook delivery (delivered, or failed for good) is kept with its attempts, "
        "counted from when it finished; pending ones are kept whatever their age",
    )
    webhook_max_concurrency: int = Field(default=64, ge=1, le=10_000, description="attempts in flight per replica")
    webhook_max_per_subscription: int = Field(
        default=4, ge=1, le=1000, description="attempts in flight to one subscription per replica"
    )
    webhook_poll_interval_seconds: float = Field(
        default=1.0, gt=0, le=60, description="seconds between two looks for due deliveries when nothing wakes it"
    )
    webhook_lease_seconds: float = Field(
        default=60, gt=0, le=3600, description="a claimed delivery is another replica's to retry after this long"
    )
    webhook_allowed_targets: list[str] = Field(
        default=[],
        description="CIDRs or host names webhooks may reach although the policy refuses them "
        "(loopback, private, link-local, metadata), e.g. 127.0.0.1/32 for a local receiver",
    )
    webhook_dns_cache_seconds: float = Field(
        default=30,
        ge=0,
        le=3600,
        description="how long the dispatcher reuses a receiver host's resolved addresses instead of resolving it "
        "for every attempt (0: every attempt); they are checked against the target policy either way",
    )
    webhook_rotation_overlap_seconds: int = Field(
        default=86400, ge=0, le=30 * 86400, description="default time the old secret keeps signing after a rotation"
    )
    incident_rules_enabled: bool = Field(
        default=True, description="read the suite's event streams and open incidents by the incident rules"
    )
    incident_event_streams: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="streams the incident rules read (JSON list); empty: every installed service's events:<name>",
    )
    alert_engine_enabled: bool = Field(
        default=True, description="evaluate alert rules on the event streams and in the periodic check"
    )
    alert_event_streams: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="streams the alert rules read (JSON list); empty: every installed service's events:<name>",
    )
    alert_check_interval_seconds: float = Field(
        default=10, gt=0, le=3600, description="seconds between two checks of dwell, absence and not-seen rules"
    )
    alert_rules_refresh_seconds: float = Field(
        default=2, ge=0, le=300, description="a changed alert rule takes effect within this many seconds"
    )
    event_interest_refresh_seconds: float = Field(
        default=2,
        ge=0,
        le=300,
        description="the event types webhook subscriptions and incident rules name are read again after this many "
        "seconds; their consumers skip other types without a statement, so a subscription or rule saved through "
        "another replica applies to events read this long after it was saved (through this one, at once)",
    )
    incident_attachment_max_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024, description="largest incident attachment accepted"
    )
    incident_url_template: str = Field(
        default="http://127.0.0.1:8004/api/v1/incidents/{id}",
        max_length=1000,
        description="link to an incident in mails and Chatwoot; {id} is replaced by the incident's id",
    )
    alert_url_template: str = Field(
        default="http://127.0.0.1:8004/api/v1/alert-events/{id}",
        max_length=1000,
        description="link to an alert in mails; {id} is replaced by the alert's id",
    )

    report_max_days: int = Field(default=92, ge=1, le=3660, description="longest period one report may cover, in days")
    report_export_max_rows: int = Field(
        default=1_000_000,
        ge=1,
        le=100_000_000,
        description="most rows one report CSV holds; a file cut there ends with a '# truncated:' line",
    )

    # Chatwoot; how to connect one: docs/rtls-cambus.md, "Chatwoot".
    chatwoot_enabled: bool = Field(
        default=False, description="open a Chatwoot conversation per incident and mirror the thread both ways"
    )
    chatwoot_url: str | None = Field(
        default=None,
        max_length=1000,
        pattern=r"^https?://[^\s]+$",
        description="base URL, e.g. https://chat.example.com",
    )
    chatwoot_api_token: SecretStr | None = Field(
        default=None,
        description="access token of the Chatwoot user the service acts as (agent-bot tokens cannot manage contacts)",
    )
    chatwoot_account_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    chatwoot_inbox_id: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="the API-channel inbox where incident conversations open"
    )
    chatwoot_contact_identifier: str = Field(
        default="mirante-rtls-cambus",
        min_length=1,
        max_length=200,
        description="namespace of the Chatwoot contacts incidents speak as: incident N is contact incident-N@<this>",
    )
    chatwoot_contact_name: str = Field(
        default="Mirante RTLS",
        min_length=1,
        max_length=200,
        description="in the name of each incident's contact: 'Incident #N (<this>)'",
    )
    chatwoot_webhook_secret: SecretStr | None = Field(
        default=None, description="the secret of the Chatwoot webhook: X-Chatwoot-Signature is required with it"
    )
    chatwoot_webhook_token: SecretStr | None = Field(
        default=None,
        description="for Chatwoot servers that do not sign webhooks: a token the webhook URL carries as ?token=",
    )
    chatwoot_timeout_seconds: float = Field(default=10.0, gt=0, le=60, description="one call to Chatwoot at most")
    chatwoot_sync_enabled: bool = Field(
        default=True, description="run the Chatwoot sync (a consumer of the rtls-cambus stream) in this process"
    )
    chatwoot_webhook_max_body_bytes: int = Field(
        default=256 * 1024, ge=1024, le=10 * 1024 * 1024, description="largest webhook body accepted from Chatwoot"
    )
    chatwoot_webhook_rate_limit: str = Field(
        default="300/minute", description="webhook requests per source address, whatever their outcome"
    )
    chatwoot_webhook_rejected_rate_limit: str = Field(
        default="30/minute", description="webhook requests per source address that fail authentication"
    )

    chatwoot_delivery_retention_days: int = Field(
        default=30, ge=1, le=3650, description="days the Chatwoot webhook log keeps a request"
    )

    # E-mail notifications; the mail server is the suite's (MIRANTE_SMTP_*).
    notifications_enabled: bool = Field(
        default=True,
        description="run the mail notifications (a consumer of the rtls-cambus stream and a sender) in this process",
    )
    mail_from: str = Field(default="Mirante <mirante@localhost>", min_length=3, max_length=320)
    alert_mail_support_group: str | None = Field(
        default=None,
        max_length=200,
        description="name of the support group whose members get alert mails; unset: no alert mails",
    )
    mail_digest_window_seconds: float = Field(
        default=300,
        ge=0,
        le=86_400,
        description="after an alert mail, the alerts for the same person within this window go out as one digest",
    )
    mail_digest_max_items: int = Field(default=50, ge=1, le=1000, description="notifications listed in one digest")
    mail_retry_schedule_seconds: list[float] = Field(
        default=[10, 60, 300, 900, 3600, 7200, 21600],
        min_length=1,
        max_length=50,
        description="longest wait before each new try of a mail (full jitter below it); its length is the retries",
    )
    mail_retention_days: int = Field(
        default=30, ge=1, le=3650, description="days a sent or failed mail notification is kept"
    )
    mail_poll_interval_seconds: float = Field(
        default=2.0, gt=0, le=60, description="seconds between two looks for mails due when nothing wakes the sender"
    )
    mail_lease_seconds: float = Field(
        default=120, gt=0, le=3600, description="mails claimed by a sender are another replica's to send after this"
    )

    @field_validator(
        "mqtt_share_group",
        "cambus_tenant",
        "chatwoot_url",
        "chatwoot_api_token",
        "chatwoot_webhook_secret",
        "chatwoot_webhook_token",
        "alert_mail_support_group",
        "chatwoot_account_id",
        "chatwoot_inbox_id",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("incident_url_template", "alert_url_template")
    @classmethod
    def _a_link(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or LINK_PLACEHOLDER not in value:
            raise ValueError(
                f"must be an http(s) URL holding {LINK_PLACEHOLDER}, e.g. https://rtls.example.com/i/{{id}}"
            )
        return value

    @field_validator("chatwoot_webhook_rate_limit", "chatwoot_webhook_rejected_rate_limit")
    @classmethod
    def _a_rate(cls, value: str) -> str:
        parse_rate(value)
        return value

    @field_validator("mail_from")
    @classmethod
    def _an_address(cls, value: str) -> str:
        _, address = email.utils.parseaddr(value)
        if "@" not in address or any(char in value for char in "\r\n"):
            raise ValueError("must be an address such as 'Mirante <mirante@example.com>'")
        return value

    @model_validator(mode="after")
    def _chatwoot_complete(self) -> Self:
        if self.chatwoot_enabled:
            missing = [
                f"RTLS_CAMBUS_{name.upper()}"
                for name in ("chatwoot_url", "chatwoot_api_token", "chatwoot_account_id", "chatwoot_inbox_id")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(f"RTLS_CAMBUS_CHATWOOT_ENABLED=true needs {', '.join(missing)}")
        if self.mail_lease_seconds <= self.infra.smtp.timeout_seconds:
            raise ValueError("mail_lease_seconds must exceed MIRANTE_SMTP_TIMEOUT_SECONDS")
        return self

    @cached_property
    def chatwoot_webhook_rate(self) -> RateLimitItem:
        return parse_rate(self.chatwoot_webhook_rate_limit)

    @cached_property
    def chatwoot_webhook_rejected_rate(self) -> RateLimitItem:
        return parse_rate(self.chatwoot_webhook_rejected_rate_limit)

    def incident_link(self, incident_id: int) -> str:
        return self.incident_url_template.replace(LINK_PLACEHOLDER, str(incident_id))

    def alert_link(self, alert_id: object) -> str:
        return self.alert_url_template.replace(LINK_PLACEHOLDER, str(alert_id))

    @model_validator(mode="after")
    def _batch_fits_receive_maximum(self) -> Self:
        if self.ingest_batch_size > self.mqtt_receive_maximum:
            raise ValueError(
                f"ingest_batch_size ({self.ingest_batch_size}) must not exceed mqtt_receive_maximum "
                f"({self.mqtt_receive_maximum}): the broker sends no more unacknowledged messages than that"
            )
        if self.webhook_lease_seconds <= self.webhook_timeout_seconds:
            raise ValueError("webhook_lease_seconds must exceed webhook_timeout_seconds")
        return self

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
