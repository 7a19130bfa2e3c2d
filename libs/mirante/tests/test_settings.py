"""Settings: `MIRANTE_*` for the shared pieces, a service's own prefix for its fields, unsafe values refused."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict

from mirante.service import ServiceSpec, discover_services
from mirante.settings import (
    DEFAULT_JWT_SECRET,
    CoreSettings,
    DatabaseSettings,
    InfraSettings,
    JwtSettings,
    RedisSettings,
    ServiceSettings,
    SettingsError,
)
from mirante.testing.apps import library_app

STRONG_SECRET = "s" * 48
DATABASE_URL = "postgresql://app:pw@db.internal:5432/mirante"
REDIS_URL = "redis://cache.internal:6379/2"


class DemoSettings(ServiceSettings):
    """Shaped like a service's settings: its own prefix, its own default port."""

    model_config = SettingsConfigDict(env_prefix="DEMO_SVC_", env_file=".env", extra="ignore")

    port: int = Field(default=8009, ge=1, le=65535)
    upstream_url: str = "http://127.0.0.1:9000"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No `MIRANTE_*` or service variables from the test run, and no `.env` file in the working folder."""
    prefixes = ("MIRANTE_", "DEMO_SVC_", *(spec.env_prefix for spec in discover_services()))
    for name in list(os.environ):
        if name.startswith(prefixes):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield


def production(monkeypatch: pytest.MonkeyPatch, **variables: str) -> InfraSettings:
    monkeypatch.setenv("MIRANTE_ENV", "production")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return InfraSettings()


# --- production safety ---


def test_development_accepts_the_defaults() -> None:
    infra = InfraSettings()

    infra.check_production()

    assert infra.core.production is False
    assert infra.jwt.secret.get_secret_value() == DEFAULT_JWT_SECRET


def test_production_refuses_the_default_jwt_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    infra = production(monkeypatch, MIRANTE_DATABASE_URL=DATABASE_URL, MIRANTE_REDIS_URL=REDIS_URL)

    with pytest.raises(SettingsError, match="MIRANTE_JWT_SECRET") as raised:
        infra.check_production()

    assert "URL" not in str(raised.value)


def test_production_refuses_missing_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    infra = production(monkeypatch, MIRANTE_JWT_SECRET=STRONG_SECRET)

    with pytest.raises(SettingsError) as raised:
        infra.check_production()

    message = str(raised.value)
    assert "MIRANTE_DATABASE_URL must be set in production" in message
    assert "MIRANTE_REDIS_URL must be set in production" in message
    assert "JWT" not in message


def test_production_lists_every_problem_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    infra = production(monkeypatch, MIRANTE_REDIS_URL=REDIS_URL)

    with pytest.raises(SettingsError) as raised:
        infra.check_production()

    assert "MIRANTE_JWT_SECRET" in str(raised.value)
    assert "MIRANTE_DATABASE_URL" in str(raised.value)
    assert "MIRANTE_REDIS_URL" not in str(raised.value)


def test_production_with_safe_values_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    infra = production(
        monkeypatch, MIRANTE_JWT_SECRET=STRONG_SECRET, MIRANTE_DATABASE_URL=DATABASE_URL, MIRANTE_REDIS_URL=REDIS_URL
    )

    infra.check_production()

    assert infra.core.json_logs is True


def test_production_refuses_a_short_metrics_token(monkeypatch: pytest.MonkeyPatch) -> None:
    safe = {"MIRANTE_JWT_SECRET": STRONG_SECRET, "MIRANTE_DATABASE_URL": DATABASE_URL, "MIRANTE_REDIS_URL": REDIS_URL}

    with pytest.raises(SettingsError, match="MIRANTE_METRICS_TOKEN must be at least 32 characters"):
        production(monkeypatch, **safe, MIRANTE_METRICS_TOKEN="CHANGE-ME").check_production()
    production(monkeypatch, **safe, MIRANTE_METRICS_TOKEN="m" * 32).check_production()


def test_production_with_rs256_keys_needs_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    infra = production(
        monkeypatch,
        MIRANTE_JWT_ALGORITHM="RS256",
        MIRANTE_JWT_PUBLIC_KEY_FILE="/etc/mirante/jwt.pub",
        MIRANTE_DATABASE_URL=DATABASE_URL,
        MIRANTE_REDIS_URL=REDIS_URL,
    )

    infra.check_production()


async def test_a_production_app_with_the_default_secret_does_not_start() -> None:
    infra = InfraSettings(
        core=CoreSettings(env="production"),
        database=DatabaseSettings(url=DATABASE_URL),
        redis=RedisSettings(url=REDIS_URL),
    )
    app = library_app(infra)

    with pytest.raises(SettingsError, match="MIRANTE_JWT_SECRET"):
        async with app.router.lifespan_context(app):
            pytest.fail("the lifespan must refuse to start")


# --- JWT rules ---


@pytest.mark.parametrize("secret", ["short", "x" * 31])
def test_a_short_hs256_secret_is_refused(secret: str) -> None:
    with pytest.raises(ValidationError, match="at least 32 characters"):
        JwtSettings(secret=SecretStr(secret))


def test_a_short_secret_from_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIRANTE_JWT_SECRET", "too-short")

    with pytest.raises(ValidationError, match="MIRANTE_JWT_SECRET must be at least 32 characters"):
        InfraSettings()


def test_a_32_character_secret_is_enough() -> None:
    assert JwtSettings(secret=SecretStr("k" * 32)).secret.get_secret_value() == "k" * 32


def test_rs256_without_a_public_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIRANTE_JWT_ALGORITHM", "RS256")
    monkeypatch.setenv("MIRANTE_JWT_PRIVATE_KEY_FILE", "/etc/mirante/jwt.key")

    with pytest.raises(ValidationError, match="MIRANTE_JWT_PUBLIC_KEY_FILE"):
        JwtSettings()


def test_rs256_with_a_public_key_is_accepted() -> None:
    settings = JwtSettings(algorithm="RS256", public_key_file=Path("/etc/mirante/jwt.pub"))

    assert settings.public_key_file == Path("/etc/mirante/jwt.pub")


def test_only_pinned_algorithms_are_accepted() -> None:
    with pytest.raises(ValidationError):
        JwtSettings.model_validate({"algorithm": "none"})


def test_the_secret_is_not_shown_in_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIRANTE_JWT_SECRET", STRONG_SECRET)

    assert STRONG_SECRET not in repr(InfraSettings())


# --- environment prefixes ---


def test_infra_settings_read_mirante_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    variables = {
        "MIRANTE_ENV": "production",
        "MIRANTE_DATA_DIR": "/var/lib/mirante",
        "MIRANTE_MAX_PAGE_SIZE": "75",
        "MIRANTE_MAX_BODY_BYTES": "4096",
        "MIRANTE_CORS_ORIGINS": '["https://ops.example.com"]',
        "MIRANTE_DATABASE_URL": DATABASE_URL,
        "MIRANTE_DATABASE_POOL_SIZE": "3",
        "MIRANTE_REDIS_URL": REDIS_URL,
        "MIRANTE_MQTT_URL": "mqtt://broker.internal:1884",
        "MIRANTE_MQTT_PROTOCOL": "3.1.1",
        "MIRANTE_JWT_SECRET": STRONG_SECRET,
        "MIRANTE_JWT_ACCESS_TOKEN_TTL_SECONDS": "600",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)

    infra = InfraSettings()

    assert (infra.core.env, infra.core.data_dir) == ("production", Path("/var/lib/mirante"))
    assert (infra.core.max_page_size, infra.core.max_body_bytes) == (75, 4096)
    assert infra.core.cors_origins == ["https://ops.example.com"]
    assert (infra.database.url, infra.database.pool_size) == (DATABASE_URL, 3)
    assert infra.redis.url == REDIS_URL
    assert (infra.mqtt.url, infra.mqtt.protocol) == ("mqtt://broker.internal:1884", "3.1.1")
    assert infra.jwt.secret.get_secret_value() == STRONG_SECRET
    assert infra.jwt.access_token_ttl_seconds == 600


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MIRANTE_ENV", "staging"),
        ("MIRANTE_DEFAULT_PAGE_SIZE", "0"),
        ("MIRANTE_MAX_BODY_BYTES", "10"),
        ("MIRANTE_DATABASE_POOL_SIZE", "many"),
        ("MIRANTE_MQTT_PROTOCOL", "4"),
        ("MIRANTE_JWT_ACCESS_TOKEN_TTL_SECONDS", "5"),
    ],
)
def test_invalid_mirante_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ValidationError):
        InfraSettings()


def test_a_service_reads_its_own_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_SVC_PORT", "9123")
    monkeypatch.setenv("DEMO_SVC_HOST", "0.0.0.0")
    monkeypatch.setenv("DEMO_SVC_UPSTREAM_URL", "http://upstream.internal")
    monkeypatch.setenv("MIRANTE_SERVICE_PORT", "7777")
    monkeypatch.setenv("MIRANTE_REDIS_URL", REDIS_URL)

    settings = DemoSettings()

    assert (settings.host, settings.port) == ("0.0.0.0", 9123)
    assert settings.upstream_url == "http://upstream.internal"
    assert settings.infra.redis.url == REDIS_URL


def test_a_service_keeps_its_default_port_without_a_variable() -> None:
    assert DemoSettings().port == 8009


def test_a_service_port_out_of_range_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_SVC_PORT", "70000")

    with pytest.raises(ValidationError):
        DemoSettings()


def test_settings_come_from_a_dotenv_file_too(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"DEMO_SVC_PORT=9321\nMIRANTE_REDIS_URL={REDIS_URL}\n")

    settings = DemoSettings()

    assert settings.port == 9321
    assert settings.infra.redis.url == REDIS_URL


@pytest.mark.parametrize("spec", discover_services(), ids=lambda spec: spec.name)
def test_every_installed_service_honours_its_port_variable(monkeypatch: pytest.MonkeyPatch, spec: ServiceSpec) -> None:
    assert spec.settings_factory().port == spec.default_port

    monkeypatch.setenv(f"{spec.env_prefix}PORT", "18999")

    assert spec.settings_factory().port == 18999
