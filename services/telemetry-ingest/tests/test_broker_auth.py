"""Broker authentication endpoints: EMQX 5 authn/authz and mosquitto-go-auth user/superuser/acl, behind a shared
secret; devices publish only to their own sensor topics, superusers do everything."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiomqtt import Topic
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.settings import InfraSettings
from mirante.testing.plugin import ClientFactory, HeadersFactory
from telemetry_ingest.config import Settings
from telemetry_ingest.devices.identity import DeviceLogin, is_own_sensor_topic, parse_device_username
from telemetry_ingest.main import create_app
from telemetry_ingest.options import parse_superusers
from telemetry_ingest.tenancy.models import DeviceCredential

TenantFactory = Callable[..., Awaitable[str]]

BROKER_SECRET = "broker-secret-0123456789abcdef"
BROKER = {"X-Broker-Secret": BROKER_SECRET}
SUPERUSER = "telemetry-ingest"
SUPERUSER_PASSWORD = "ingest-password-1"
PATHS = [
    "/api/v1/mqtt/emqx/authn",
    "/api/v1/mqtt/emqx/authz",
    "/api/v1/mqtt/go-auth/user",
    "/api/v1/mqtt/go-auth/superuser",
    "/api/v1/mqtt/go-auth/acl",
]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def broker_settings(infra: InfraSettings, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "broker_auth_secret": BROKER_SECRET,
        "broker_superusers": {SUPERUSER: sha256(SUPERUSER_PASSWORD)},
        # These tests publish nothing, and a subscriber would take other runs' shared messages.
        "mqtt_ingest_enabled": False,
        **overrides,
    }
    return Settings(infra=infra, **values)


@pytest.fixture
def settings(infra_settings: InfraSettings) -> Settings:
    return broker_settings(infra_settings)


@dataclass(frozen=True)
class Device:
    tenant: str
    device_id: str
    secret: str

    @property
    def username(self) -> str:
        return f"{self.tenant}:{self.device_id}"

    def topic(self, sensor: str = "temperature") -> str:
        return f"tenants/{self.tenant}/devices/{self.device_id}/sensors/{sensor}"


DeviceFactory = Callable[..., Awaitable[Device]]


@pytest.fixture
async def make_device(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, make_tenant: TenantFactory
) -> DeviceFactory:
    """`await make_device()`: a registered device with credentials, in a new tenant unless one is given."""
    staff = await auth_headers("admin", staff=True)

    async def make(tenant: str | None = None, device_id: str = "d-001") -> Device:
        tenant = tenant or await make_tenant()
        registered = await client.post(
            f"/api/v1/tenants/{tenant}/devices", json={"device_id": device_id}, headers=staff
        )
        assert registered.status_code == 201, registered.text
        issued = await client.post(f"/api/v1/tenants/{tenant}/devices/{device_id}/credentials", headers=staff)
        assert issued.status_code == 201, issued.text
        return Device(tenant=tenant, device_id=device_id, secret=issued.json()["secret"])

    return make


@pytest.fixture
async def device(make_device: DeviceFactory) -> Device:
    return await make_device()


async def emqx_authn(client: httpx.AsyncClient, **fields: str) -> dict[str, Any]:
    response = await client.post("/api/v1/mqtt/emqx/authn", json=fields, headers=BROKER)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    result: dict[str, Any] = response.json()
    return result


async def emqx_authz(client: httpx.AsyncClient, **fields: str) -> str:
    response = await client.post("/api/v1/mqtt/emqx/authz", json=fields, headers=BROKER)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert set(response.json()) == {"result"}
    result: str = response.json()["result"]
    return result


async def go_auth(client: httpx.AsyncClient, check: str, **fields: Any) -> int:
    response = await client.post(f"/api/v1/mqtt/go-auth/{check}", json=fields, headers=BROKER)
    assert response.status_code in (200, 403), response.text
    assert response.json()["ok"] is (response.status_code == 200)
    return response.status_code


# --- the shared secret ------------------------------------------------------------------------------------------


async def test_without_a_configured_secret_every_endpoint_answers_503(
    make_client: ClientFactory, infra_settings: InfraSettings
) -> None:
    client = await make_client(create_app(Settings(infra=infra_settings, mqtt_ingest_enabled=False)))

    for path in PATHS:
        response = await client.post(path, json={"username": "a", "password": "b"}, headers=BROKER)

        assert response.status_code == 503, path
        assert response.json()["error"]["code"] == "broker_auth_not_configured"
        assert "TELEMETRY_INGEST_BROKER_AUTH_SECRET" in response.json()["error"]["message"]


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


WRONG_SECRETS: list[dict[str, str]] = [
    {},
    {"X-Broker-Secret": ""},
    {"X-Broker-Secret": BROKER_SECRET + "x"},
    {"X-Broker-Secret": BROKER_SECRET[:-1]},
    basic("mosquitto", "wrong-secret-0123456789"),
    {"Authorization": "Basic !!!not-base64"},
    {"Authorization": f"Bearer {BROKER_SECRET}"},
    {"Authorization": "Basic " + base64.b64encode(BROKER_SECRET.encode()).decode()},
]


async def test_a_missing_or_wrong_secret_gets_401(client: httpx.AsyncClient) -> None:
    for path in PATHS:
        for headers in WRONG_SECRETS:
            response = await client.post(
                path, json={"username": SUPERUSER, "password": SUPERUSER_PASSWORD}, headers=headers
            )

            assert response.status_code == 401, (path, headers, response.text)
            assert response.json()["error"]["code"] == "unauthorized"


async def test_the_secret_may_come_as_the_basic_auth_password(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/mqtt/go-auth/superuser", json={"username": SUPERUSER}, headers=basic("mosquitto", BROKER_SECRET)
    )

    assert response.status_code == 200, response.text


def test_short_secrets_and_bad_superusers_are_refused(infra_settings: InfraSettings) -> None:
    with pytest.raises(ValidationError, match="at least 16"):
        Settings(infra=infra_settings, broker_auth_secret="short")
    assert Settings(infra=infra_settings, broker_auth_secret="").broker_auth_secret is None
    with pytest.raises(ValidationError):
        Settings(infra=infra_settings, broker_authn_failure_limit="often")
    for bad in ("name", "na:me:" + "0" * 64, "name:abc", "a:b:" + "0" * 64, {"x:y": "0" * 64}, 42):
        with pytest.raises((ValueError, ValidationError)):
            parse_superusers(bad)


def test_superusers_come_as_pairs_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    one, two = sha256("one"), sha256("two").upper()
    expected = {"ingest": one, "rtls.cambus": two.lower()}

    assert parse_superusers(f"ingest:{one}, rtls.cambus:{two}") == expected
    assert parse_superusers(f"ingest:{one}\nrtls.cambus:{two}") == expected
    assert parse_superusers(json.dumps([f"ingest:{one}", f"rtls.cambus:{two}"])) == expected
    assert parse_superusers(json.dumps({"ingest": one, "rtls.cambus": two})) == expected
    assert parse_superusers("") == {}
    monkeypatch.setenv("TELEMETRY_INGEST_BROKER_SUPERUSERS", f"ingest:{one},rtls.cambus:{two}")
    assert Settings().broker_superusers == expected
    monkeypatch.setenv("TELEMETRY_INGEST_BROKER_SUPERUSERS", json.dumps({"ingest": one}))
    assert Settings().broker_superusers == {"ingest": one}
    with pytest.raises(ValueError, match="listed twice"):
        parse_superusers(f"ingest:{one},ingest:{one}")
    monkeypatch.setenv("TELEMETRY_INGEST_BROKER_SUPERUSERS", f"ingest:{one},ingest:{one}")
    with pytest.raises(ValidationError, match="listed twice"):
        Settings()


# --- usernames and topics (pure) --------------------------------------------------------------------------------


def test_device_usernames_split_at_the_first_colon() -> None:
    assert parse_device_username("acme:d-001") == DeviceLogin("acme", "d-001")
    assert parse_device_username("acme:dev:1") == DeviceLogin("acme", "dev:1")
    for bad in ("acme", "acme:", ":d1", "Acme:d1", "acme:d 1", "acme:d+", "acme:d#", "acme/x:d1", "a:" + "x" * 129):
        assert parse_device_username(bad) is None, bad


@pytest.mark.parametrize(
    ("topic", "own"),
    [
        ("tenants/acme/devices/d1/sensors/temp", True),
        ("tenants/acme/devices/d1/sensors/+", False),
        ("tenants/acme/devices/d1/sensors/#", False),
        ("tenants/acme/devices/+/sensors/temp", False),
        ("tenants/acme/devices/d1/sensors", False),
        ("tenants/acme/devices/d1/sensors/temp/extra", False),
        ("tenants/acme/devices/d1/sensors/", False),
        ("tenants/acme/devices/d2/sensors/temp", False),
        ("tenants/other/devices/d1/sensors/temp", False),
        ("/tenants/acme/devices/d1/sensors/temp", False),
        ("tenants/acme/devices/d1/commands/temp", False),
        ("$SYS/broker/uptime", False),
        ("#", False),
    ],
)
def test_own_sensor_topics_are_exact(topic: str, own: bool) -> None:
    assert is_own_sensor_topic(topic, DeviceLogin("acme", "d1")) is own


# --- EMQX 5 authentication --------------------------------------------------------------------------------------


async def test_emqx_authn_allows_a_device_with_its_own_acl(client: httpx.AsyncClient, device: Device) -> None:
    answer = await emqx_authn(
        client, username=device.username, password=device.secret, clientid=device.device_id, peerhost="10.0.0.7"
    )

    assert answer == {
        "result": "allow",
        "is_superuser": False,
        "client_attrs": {"tenant": device.tenant, "device_id": device.device_id},
        "acl": [
            {"permission": "allow", "action": "publish", "topic": f"tenants/{device.tenant}/devices/d-001/sensors/+"},
            {"permission": "deny", "action": "all", "topic": "#"},
        ],
    }
    allowed = Topic(device.topic())
    assert allowed.matches(answer["acl"][0]["topic"])
    assert not Topic(f"tenants/{device.tenant}/devices/d-002/sensors/temperature").matches(answer["acl"][0]["topic"])


async def test_emqx_authn_records_the_last_use(
    client: httpx.AsyncClient, device: Device, db_session: AsyncSession
) -> None:
    await emqx_authn(client, username=device.username, password=device.secret, clientid="any")

    used = await db_session.scalar(
        select(DeviceCredential.last_used_at)
        .where(DeviceCredential.username == device.username)
        .execution_options(populate_existing=True)
    )
    assert used is not None


async def test_emqx_authn_denies_with_200(
    client: httpx.AsyncClient, make_device: DeviceFactory, make_tenant: TenantFactory
) -> None:
    device = await make_device()
    other = await make_device(device_id="d-002", tenant=device.tenant)
    foreign = await make_device(device_id="d-001")
    cases = {
        "wrong secret": {"username": device.username, "password": device.secret + "x"},
        "another device's secret": {"username": device.username, "password": other.secret},
        "same id, other tenant's secret": {"username": device.username, "password": foreign.secret},
        "no password": {"username": device.username, "password": ""},
        "no username": {"username": "", "password": device.secret},
        "nothing": {},
        "unknown device": {"username": f"{device.tenant}:ghost", "password": device.secret},
        "unknown tenant": {"username": "ghost-tenant:d-001", "password": device.secret},
        "not a device username": {"username": "d-001", "password": device.secret},
        "malformed username": {"username": f"{device.tenant}:d 001", "password": device.secret},
        "superuser, wrong password": {"username": SUPERUSER, "password": device.secret},
        "overlong username": {"username": "x" * 2000, "password": device.secret},
    }
    for case, fields in cases.items():
        assert await emqx_authn(client, **fields) == {"result": "deny"}, case


async def test_emqx_authn_denies_unreadable_requests_with_200(client: httpx.AsyncClient, device: Device) -> None:
    bodies: list[tuple[bytes, str]] = [
        (b"not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'{"username": ["x"], "password": "y"}', "application/json"),
        (b"<xml/>", "text/xml"),
    ]
    for body, content_type in bodies:
        response = await client.post(
            "/api/v1/mqtt/emqx/authn", content=body, headers={**BROKER, "Content-Type": content_type}
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"result": "deny"}


async def test_emqx_authn_reads_forms_and_query_strings(client: httpx.AsyncClient, device: Device) -> None:
    fields = {"username": device.username, "password": device.secret, "clientid": device.device_id}

    form = await client.post("/api/v1/mqtt/emqx/authn", data=fields, headers=BROKER)
    query = await client.get("/api/v1/mqtt/emqx/authn", params=fields, headers=BROKER)

    assert form.json()["result"] == "allow"
    assert query.json()["result"] == "allow"
    assert "is_superuser" in query.json()


async def test_emqx_authn_allows_superusers_without_an_acl(client: httpx.AsyncClient) -> None:
    answer = await emqx_authn(client, username=SUPERUSER, password=SUPERUSER_PASSWORD, clientid="ingest-1")

    assert answer == {"result": "allow", "is_superuser": True}


async def test_revoked_and_rotated_secrets_stop_working(
    client: httpx.AsyncClient, device: Device, auth_headers: HeadersFactory
) -> None:
    staff = await auth_headers("admin", staff=True)
    url = f"/api/v1/tenants/{device.tenant}/devices/{device.device_id}/credentials"

    rotated = (await client.post(url, headers=staff)).json()["secret"]
    assert (await emqx_authn(client, username=device.username, password=device.secret))["result"] == "deny"
    assert (await emqx_authn(client, username=device.username, password=rotated))["result"] == "allow"
    publish = {"username": device.username, "clientid": "c", "topic": device.topic(), "action": "publish"}
    assert await emqx_authz(client, **publish) == "allow"

    assert (await client.delete(url, headers=staff)).status_code == 204
    assert (await emqx_authn(client, username=device.username, password=rotated))["result"] == "deny"
    assert await emqx_authz(client, **publish) == "deny"
    assert await go_auth(client, "user", username=device.username, password=rotated, clientid="c") == 403
    assert await go_auth(client, "acl", username=device.username, clientid="c", topic=device.topic(), acc=2) == 403


async def test_failed_logins_are_limited_per_username(
    make_client: ClientFactory, infra_settings: InfraSettings, make_device: DeviceFactory
) -> None:
    client = await make_client(create_app(broker_settings(infra_settings, broker_authn_failure_limit="3/minute")))
    device, neighbour = await make_device(), await make_device()
    for _ in range(3):
        assert (await emqx_authn(client, username=device.username, password="guess"))["result"] == "deny"

    locked = await emqx_authn(client, username=device.username, password=device.secret)
    locked_go_auth = await go_auth(client, "user", username=device.username, password=device.secret)
    neighbour_answer = await emqx_authn(client, username=neighbour.username, password=neighbour.secret)

    assert locked == {"result": "deny"}
    assert locked_go_auth == 403
    assert neighbour_answer["result"] == "allow"


async def test_client_ids_can_be_required_to_name_the_device(
    make_client: ClientFactory, infra_settings: InfraSettings, make_device: DeviceFactory
) -> None:
    client = await make_client(create_app(broker_settings(infra_settings, broker_require_clientid_match=True)))
    device = await make_device()
    login = {"username": device.username, "password": device.secret}
    publish = {"username": device.username, "topic": device.topic(), "action": "publish"}

    assert (await emqx_authn(client, **login, clientid=device.device_id))["result"] == "allow"
    assert (await emqx_authn(client, **login, clientid=device.username))["result"] == "allow"
    assert (await emqx_authn(client, **login, clientid="someone-else"))["result"] == "deny"
    assert (await emqx_authn(client, **login, clientid=""))["result"] == "deny"
    assert await emqx_authz(client, **publish, clientid=device.device_id) == "allow"
    assert await emqx_authz(client, **publish, clientid="someone-else") == "deny"
    assert await go_auth(client, "user", **login, clientid="someone-else") == 403
    superuser = await emqx_authn(client, username=SUPERUSER, password=SUPERUSER_PASSWORD, clientid="anything")
    assert superuser["result"] == "allow"


# --- EMQX 5 authorization ---------------------------------------------------------------------------------------


async def test_emqx_authz_matrix(client: httpx.AsyncClient, make_device: DeviceFactory) -> None:
    device = await make_device()
    neighbour = await make_device(tenant=device.tenant, device_id="d-002")
    t, d = device.tenant, device.device_id
    own = device.topic()
    cases: list[tuple[str, dict[str, str], str]] = [
        ("own topic", {"topic": own, "action": "publish"}, "allow"),
        ("own topic, other sensor", {"topic": device.topic("co2"), "action": "publish"}, "allow"),
        ("legacy access 2", {"topic": own, "access": "2"}, "allow"),
        ("subscribe own topic", {"topic": own, "action": "subscribe"}, "deny"),
        ("legacy access 1", {"topic": own, "access": "1"}, "deny"),
        ("no action", {"topic": own}, "deny"),
        ("unknown action", {"topic": own, "action": "retain"}, "deny"),
        ("other device", {"topic": neighbour.topic(), "action": "publish"}, "deny"),
        ("other tenant", {"topic": f"tenants/other/devices/{d}/sensors/temperature", "action": "publish"}, "deny"),
        ("wildcard sensor", {"topic": f"tenants/{t}/devices/{d}/sensors/+", "action": "publish"}, "deny"),
        ("multi-level wildcard", {"topic": f"tenants/{t}/devices/{d}/#", "action": "publish"}, "deny"),
        ("wildcard device", {"topic": f"tenants/{t}/devices/+/sensors/temperature", "action": "publish"}, "deny"),
        ("extra level", {"topic": own + "/x", "action": "publish"}, "deny"),
        ("too short", {"topic": f"tenants/{t}/devices/{d}", "action": "publish"}, "deny"),
        ("system topic", {"topic": "$SYS/broker/clients", "action": "subscribe"}, "deny"),
        ("everything", {"topic": "#", "action": "subscribe"}, "deny"),
    ]
    for case, fields, expected in cases:
        answer = await emqx_authz(client, username=device.username, clientid=d, **fields)
        assert answer == expected, case


async def test_emqx_authz_for_other_usernames(client: httpx.AsyncClient, device: Device) -> None:
    own = device.topic()

    assert await emqx_authz(client, username="", clientid="x", topic=own, action="publish") == "deny"
    assert await emqx_authz(client, username="stranger", clientid="x", topic=own, action="publish") == "deny"
    assert await emqx_authz(client, username=f"{device.tenant}:ghost", topic=own, action="publish") == "deny"
    for action in ("publish", "subscribe"):
        answer = await emqx_authz(client, username=SUPERUSER, clientid="i", topic="tenants/+/#", action=action)
        assert answer == "allow"
    garbage = await client.post(
        "/api/v1/mqtt/emqx/authz", content=b"{", headers={**BROKER, "Content-Type": "application/json"}
    )
    assert garbage.json() == {"result": "deny"}


# --- mosquitto-go-auth ------------------------------------------------------------------------------------------


async def test_go_auth_user_check(client: httpx.AsyncClient, device: Device) -> None:
    assert await go_auth(client, "user", username=device.username, password=device.secret, clientid="c1") == 200
    assert await go_auth(client, "user", username=device.username, password="wrong", clientid="c1") == 403
    assert await go_auth(client, "user", username=SUPERUSER, password=SUPERUSER_PASSWORD, clientid="i") == 200
    assert await go_auth(client, "user", username=SUPERUSER, password="wrong", clientid="i") == 403
    assert await go_auth(client, "user", username="nobody", password="x", clientid="c") == 403

    form = await client.post(
        "/api/v1/mqtt/go-auth/user",
        data={"username": device.username, "password": device.secret, "clientid": "c1"},
        headers=BROKER,
    )
    assert form.status_code == 200
    assert form.json() == {"ok": True, "error": ""}
    # The plugin's GET still sends a JSON body.
    get = await client.request(
        "GET",
        "/api/v1/mqtt/go-auth/user",
        content=json.dumps({"username": device.username, "password": device.secret, "clientid": "c1"}),
        headers={**BROKER, "Content-Type": "application/json"},
    )
    assert get.status_code == 200
    put = await client.put(
        "/api/v1/mqtt/go-auth/user", json={"username": device.username, "password": "x"}, headers=BROKER
    )
    assert put.status_code == 403
    assert put.json()["ok"] is False
    assert put.json()["error"] == "unknown username or wrong password"


async def test_go_auth_superuser_check(client: httpx.AsyncClient, device: Device) -> None:
    assert await go_auth(client, "superuser", username=SUPERUSER) == 200
    assert await go_auth(client, "superuser", username=device.username) == 403
    assert await go_auth(client, "superuser", username="") == 403
    form = await client.post("/api/v1/mqtt/go-auth/superuser", data={"username": SUPERUSER}, headers=BROKER)
    assert form.status_code == 200


async def test_go_auth_acl_matrix(client: httpx.AsyncClient, make_device: DeviceFactory) -> None:
    device = await make_device()
    foreign = await make_device(device_id=device.device_id)
    own = device.topic()
    cases: list[tuple[str, str, str, int, int]] = [
        ("publish own", device.username, own, 2, 200),
        ("subscribe own", device.username, own, 4, 403),
        ("receive own", device.username, own, 1, 403),
        ("unknown access", device.username, own, 3, 403),
        ("publish other tenant", device.username, foreign.topic(), 2, 403),
        ("publish wildcard", device.username, device.topic("+"), 2, 403),
        ("publish to #", device.username, "#", 2, 403),
        ("other tenant's device publishes here", foreign.username, own, 2, 403),
        ("superuser subscribes", SUPERUSER, "$share/telemetry-ingest/tenants/+/devices/+/sensors/+", 4, 200),
        ("superuser receives", SUPERUSER, own, 1, 200),
        ("superuser publishes", SUPERUSER, own, 2, 200),
        ("stranger", "stranger", own, 2, 403),
    ]
    for case, username, topic, acc, expected in cases:
        answer = await go_auth(client, "acl", username=username, clientid="c", topic=topic, acc=acc)
        assert answer == expected, case

    form = await client.post(
        "/api/v1/mqtt/go-auth/acl",
        data={"username": device.username, "clientid": "c", "topic": own, "acc": "2"},
        headers=BROKER,
    )
    assert form.status_code == 200


async def test_go_auth_unreadable_requests_get_400(client: httpx.AsyncClient) -> None:
    bodies: list[tuple[bytes, str]] = [
        (b"{not json", "application/json"),
        (b'"a string"', "application/json"),
        (b"username=x", "text/plain"),
        (b'{"username": {"a": 1}}', "application/json"),
        (b'{"acc": "write"}', "application/json"),
        (b"\xff\xfe=1", "application/x-www-form-urlencoded"),
    ]
    for check in ("user", "superuser", "acl"):
        for body, content_type in bodies:
            if check != "acl" and b"acc" in body:
                continue
            response = await client.post(
                f"/api/v1/mqtt/go-auth/{check}", content=body, headers={**BROKER, "Content-Type": content_type}
            )
            assert response.status_code == 400, (check, body, response.text)
            assert response.json()["error"]["code"] == "bad_broker_request"


async def test_broker_endpoints_are_documented(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    for path in PATHS:
        assert "post" in paths[path], path
        assert "requestBody" in paths[path]["post"], path
