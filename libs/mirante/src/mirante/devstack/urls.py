"""The three URLs every Mirante command needs, and where they come from in the environment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from mirante.devstack.errors import InvalidStackConfigError, StackNotRunningError
from mirante.settings import DatabaseSettings, MqttSettings, RedisSettings

Component = Literal["database", "redis", "mqtt"]
COMPONENTS: tuple[Component, ...] = ("database", "redis", "mqtt")

ENV_NAMES: dict[Component, str] = {
    "database": "MIRANTE_DATABASE_URL",
    "redis": "MIRANTE_REDIS_URL",
    "mqtt": "MIRANTE_MQTT_URL",
}

_SCHEMES: dict[Component, tuple[str, ...]] = {
    "database": ("postgresql", "postgres", "postgresql+asyncpg", "postgresql+psycopg", "postgresql+psycopg2"),
    "redis": ("redis", "rediss", "unix"),
    "mqtt": ("mqtt", "mqtts"),
}


def check_url(component: Component, url: str) -> str:
    """Return `url` when its scheme suits `component`, else raise `InvalidStackConfigError`."""
    scheme = urlsplit(url).scheme
    if scheme not in _SCHEMES[component]:
        expected = " or ".join(f"{name}://" for name in _SCHEMES[component])
        raise InvalidStackConfigError(f"{ENV_NAMES[component]} must start with {expected}, got {url!r}")
    return url


def redact(url: str) -> str:
    """`url` with its password replaced by `***`, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


@dataclass(frozen=True)
class StackUrls:
    """Where the database, Redis and the MQTT broker of this process are."""

    database_url: str
    redis_url: str
    mqtt_url: str

    def __post_init__(self) -> None:
        for component in COMPONENTS:
            check_url(component, self.get(component))

    def get(self, component: Component) -> str:
        """The URL of one component."""
        url: str = getattr(self, f"{component}_url")
        return url


@dataclass(frozen=True)
class ResolvedUrls:
    """URLs found so far; `None` where nothing provides the component."""

    database_url: str | None = None
    redis_url: str | None = None
    mqtt_url: str | None = None

    def __post_init__(self) -> None:
        for component in COMPONENTS:
            url = self.get(component)
            if url is not None:
                check_url(component, url)

    def get(self, component: Component) -> str | None:
        """The URL of one component, or `None`."""
        url: str | None = getattr(self, f"{component}_url")
        return url

    @property
    def missing(self) -> tuple[Component, ...]:
        """Components that have no URL yet."""
        return tuple(component for component in COMPONENTS if self.get(component) is None)

    def complete(self) -> StackUrls:
        """All three URLs, or `StackNotRunningError` naming the variables to set."""
        if self.missing:
            names = ", ".join(ENV_NAMES[component] for component in self.missing)
            raise StackNotRunningError(f"{names} not set and no `mirante up` stack provides them")
        return StackUrls(
            database_url=str(self.database_url), redis_url=str(self.redis_url), mqtt_url=str(self.mqtt_url)
        )


def env_urls() -> ResolvedUrls:
    """URLs set through `MIRANTE_*_URL` (environment or `.env`); empty values count as unset."""
    return ResolvedUrls(
        database_url=DatabaseSettings().url or None,
        redis_url=RedisSettings().url or None,
        mqtt_url=MqttSettings().url or None,
    )
