"""`mirante user list|set-role|set-staff|set-password|deactivate|activate`: the commands an admin with database
access runs to get back in, through the console entry point in a thread of this process, checked against the
identity API of a library app on the same database (tokens the API issued stop working where the API would
revoke them)."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from mirante.cli import main
from mirante.devstack import StackUrls
from mirante.settings import InfraSettings
from mirante.testing.apps import library_app
from mirante.testing.cli import run_entry_point

PASSWORD = "cli-password-1234"
NEW_PASSWORD = "another-password-5678"
LOGIN = "/api/v1/auth/login"
ME = "/api/v1/auth/me"
Result = tuple[int, str, str]


class Cli:
    """Runs `mirante ...` with this run's servers and database, and remembers the usernames it made."""

    def __init__(self, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
        self.env, self.monkeypatch, self.capsys = env, monkeypatch, capsys
        self.usernames: list[str] = []
        self.tenant = f"t-{uuid.uuid4().hex[:10]}"

    async def __call__(self, *args: str, stdin: str | None = None) -> Result:
        if stdin is not None:
            self.monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        return await run_entry_point(
            main, args, env=self.env, env_prefixes=("MIRANTE_",), monkeypatch=self.monkeypatch, capsys=self.capsys
        )

    async def user(self, stem: str, *options: str) -> str:
        name = f"{stem}-{uuid.uuid4().hex[:10]}"
        self.usernames.append(name)
        code, _, err = await self("user", "create", name, "--password", PASSWORD, *options)
        assert code == 0, err
        return name


@pytest_asyncio.fixture(loop_scope="session")
async def cli(
    database_url: str,
    mirante_urls: StackUrls,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    redis_client: Redis,
) -> AsyncIterator[Cli]:
    env = {
        "MIRANTE_DATABASE_URL": database_url,
        "MIRANTE_REDIS_URL": mirante_urls.redis_url,
        "MIRANTE_MQTT_URL": mirante_urls.mqtt_url,
        "MIRANTE_DATA_DIR": str(tmp_path / "data"),
        "MIRANTE_LOG_LEVEL": "WARNING",
    }
    runner = Cli(env, monkeypatch, capsys)
    yield runner
    for name in runner.usernames:
        async for key in redis_client.scan_iter(match=f"mirante:ratelimit*{name}*"):
            await redis_client.delete(key)


@pytest_asyncio.fixture(loop_scope="session")
async def api(infra_settings: InfraSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The identity API committing its own requests (a login writes the user's row, which the commands then
    change: a test session holding that write open would block them)."""
    app = library_app(infra_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def login(api: httpx.AsyncClient, username: str, password: str = PASSWORD) -> dict[str, str]:
    response = await api.post(LOGIN, data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def me(api: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await api.get(ME, headers=headers)


def assert_one_line_error(result: Result) -> str:
    code, out, err = result
    assert code == 2, result
    assert out == "" and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


async def test_list_shows_a_table_a_tenant_and_json(cli: Cli) -> None:
    admin = await cli.user("admin", "--role", "admin", "--staff", "--tenant", cli.tenant)
    viewer = await cli.user("viewer", "--tenant", cli.tenant)
    outsider = await cli.user("outsider")
    code, _, err = await cli("user", "deactivate", viewer)
    assert code == 0, err

    code, out, err = await cli("user", "list", "--tenant", cli.tenant)

    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["username", "email", "role", "tenant", "staff", "active"]
    assert [line.split() for line in lines[1:]] == [
        [admin, "-", "admin", cli.tenant, "yes", "yes"],
        [viewer, "-", "viewer", cli.tenant, "no", "no"],
    ]
    assert lines[0].index("tenant") == lines[1].index(cli.tenant) == lines[2].index(cli.tenant)  # aligned
    code, out, err = await cli("user", "list")
    assert code == 0, err
    assert outsider in out and admin in out
    code, out, err = await cli("user", "list", "--tenant", cli.tenant, "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [(user["username"], user["role"], user["is_staff"], user["is_active"]) for user in listed] == [
        (admin, "admin", True, True),
        (viewer, "viewer", False, False),
    ]
    assert "password_hash" not in out
    code, out, err = await cli("user", "list", "--tenant", "no-such-tenant-here")
    assert (code, out) == (0, "no users in tenant no-such-tenant-here\n"), err


async def test_set_role_revokes_tokens_on_a_demotion_only(cli: Cli, api: httpx.AsyncClient) -> None:
    name = await cli.user("role", "--role", "operator")
    before = await login(api, name)

    code, out, err = await cli("user", "set-role", name.upper(), "admin")

    assert (code, out) == (0, f"updated {name}: role admin\n"), err
    assert (await me(api, before)).json()["role"] == "admin"
    code, out, err = await cli("user", "set-role", name, "viewer")
    assert (code, out) == (0, f"updated {name}: role viewer; tokens issued before are revoked\n"), err
    revoked = await me(api, before)
    assert revoked.status_code == 401
    assert revoked.json()["error"]["message"] == "invalid token: token has been revoked"
    assert (await me(api, await login(api, name))).json()["role"] == "viewer"


async def test_set_staff_on_keeps_tokens_and_off_revokes_them(cli: Cli, api: httpx.AsyncClient) -> None:
    name = await cli.user("staff", "--role", "admin")
    headers = await login(api, name)

    code, out, err = await cli("user", "set-staff", name, "on")

    assert (code, out) == (0, f"updated {name}: role admin, staff\n"), err
    assert (await me(api, headers)).json()["is_staff"] is True
    code, out, err = await cli("user", "set-staff", name, "off")
    assert (code, out) == (0, f"updated {name}: role admin; tokens issued before are revoked\n"), err
    assert (await me(api, headers)).status_code == 401


async def test_set_password_reads_one_line_of_stdin_and_revokes_tokens(cli: Cli, api: httpx.AsyncClient) -> None:
    name = await cli.user("pass")
    headers = await login(api, name)

    code, out, err = await cli("user", "set-password", name, stdin=f"{NEW_PASSWORD}\n")

    assert (code, out) == (0, f"updated {name}: role viewer; tokens issued before are revoked\n"), err
    assert (await me(api, headers)).status_code == 401
    old = await api.post(LOGIN, data={"username": name, "password": PASSWORD})
    assert old.status_code == 401
    assert (await me(api, await login(api, name, NEW_PASSWORD))).status_code == 200


async def test_set_password_applies_the_api_password_rules(cli: Cli, api: httpx.AsyncClient) -> None:
    name = await cli.user("rules")

    line = assert_one_line_error(await cli("user", "set-password", name, stdin="short\n"))

    assert line.startswith("error: invalid user: password: ")
    assert "8 characters" in line
    assert "no password on standard input" in assert_one_line_error(await cli("user", "set-password", name, stdin=""))
    await login(api, name)  # the password is unchanged


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A terminal on stdin; `getpass` answers with the strings the test puts in the yielded list, in order."""
    answers: list[str] = []
    monkeypatch.setattr("sys.stdin", Terminal())
    monkeypatch.setattr("getpass.getpass", lambda prompt="": answers.pop(0))
    yield answers


async def test_set_password_asks_twice_at_a_terminal(cli: Cli, api: httpx.AsyncClient, terminal: list[str]) -> None:
    name = await cli.user("tty")

    terminal.extend([NEW_PASSWORD, NEW_PASSWORD + "x"])
    assert assert_one_line_error(await cli("user", "set-password", name)) == "error: passwords do not match"
    terminal.extend([NEW_PASSWORD, NEW_PASSWORD])
    code, _, err = await cli("user", "set-password", name)

    assert code == 0, err
    assert terminal == []
    await login(api, name, NEW_PASSWORD)


async def test_deactivate_revokes_and_refuses_login_until_activated(cli: Cli, api: httpx.AsyncClient) -> None:
    name = await cli.user("active", "--role", "admin")
    headers = await login(api, name)

    code, out, err = await cli("user", "deactivate", name)

    assert (code, out) == (0, f"updated {name}: role admin, inactive; tokens issued before are revoked\n"), err
    assert (await me(api, headers)).status_code == 401
    assert (await api.post(LOGIN, data={"username": name, "password": PASSWORD})).status_code == 401
    code, out, err = await cli("user", "activate", name)
    assert (code, out) == (0, f"updated {name}: role admin\n"), err
    assert (await me(api, await login(api, name))).status_code == 200


@pytest.mark.parametrize(
    "arguments",
    [
        ["set-role", "{name}", "admin"],
        ["set-staff", "{name}", "on"],
        ["deactivate", "{name}"],
        ["activate", "{name}"],
        ["set-password", "{name}"],
    ],
)
async def test_an_unknown_username_is_a_one_line_error(cli: Cli, arguments: list[str]) -> None:
    name = f"nobody-{uuid.uuid4().hex[:10]}"

    result = await cli("user", *(argument.format(name=name) for argument in arguments), stdin=f"{NEW_PASSWORD}\n")

    assert assert_one_line_error(result) == f"error: no user named {name!r} (`mirante user list` shows them)"


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["set-role", "someone", "root"], "invalid choice: 'root'"),
        (["set-role", "someone"], "the following arguments are required: role"),
        (["set-staff", "someone", "yes"], "invalid choice: 'yes'"),
        (["deactivate"], "the following arguments are required: username"),
    ],
)
def test_bad_arguments_are_argparse_errors(
    arguments: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["user", *arguments])

    assert exited.value.code == 2
    assert complaint in capsys.readouterr().err
