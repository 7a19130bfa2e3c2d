"""The `mirante` command: run the suite, migrate, manage users and API keys."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.db import one_transaction
from mirante.devstack import StackError, ensure_stack
from mirante.migrations import MigrationError, upgrade_all
from mirante.service import ServiceSpec, UnknownServiceError, get_service
from mirante.settings import CoreSettings, DatabaseSettings, SettingsError
from mirante.web.errors import ApiError
from mirante.web.logs import configure_logging

logger = logging.getLogger("mirante")
T = TypeVar("T")
ROLE_CHOICES = ["admin", "operator", "viewer"]
PASSWORD_SOURCE = "twice at a terminal, else one line of standard input"


class CommandError(Exception):
    """A failure the user can act on; printed without a traceback."""


def _with_database(work: Callable[[str], T]) -> T:
    """Run `work(database_url)` with a database: the configured one, a running stack's, or an embedded one."""
    with ensure_stack(CoreSettings().data_dir) as urls:
        return work(urls.database_url)


async def _in_session(database_url: str, work: Callable[[AsyncSession], Any]) -> Any:
    async with one_transaction(database_url, DatabaseSettings()) as session:
        result = work(session)
        if asyncio.iscoroutine(result):
            result = await result
        return result


def cmd_migrate(args: argparse.Namespace) -> int:
    histories = _with_database(lambda url: asyncio.run(upgrade_all(url)))
    print(f"migrated: {', '.join(histories)}")
    return 0


def _read_new_password() -> str:
    """A new password: asked twice at a terminal, else one line of standard input (for scripts)."""
    if sys.stdin is not None and sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Password (again): "):
            raise CommandError("passwords do not match")
        return password
    line = sys.stdin.readline() if sys.stdin is not None else ""
    if not line:
        raise CommandError("no password on standard input: give one line, or run at a terminal to be asked")
    return line.removesuffix("\n").removesuffix("\r")


def _in_database(work: Callable[[AsyncSession], Any]) -> Any:
    return _with_database(lambda url: asyncio.run(_in_session(url, work)))


def cmd_user_create(args: argparse.Namespace) -> int:
    from mirante.auth.commands import create_user

    password = args.password if args.password is not None else _read_new_password()

    def work(session: AsyncSession) -> Any:
        return create_user(
            session,
            username=args.username,
            password=password,
            role=args.role,
            staff=args.staff,
            tenant=args.tenant,
        )

    user = _in_database(work)
    print(f"created user {user.username} (role {user.role}{', staff' if user.is_staff else ''})")
    return 0


USER_COLUMNS = ("username", "email", "role", "tenant", "staff", "active")


def _user_row(user: Any) -> tuple[str, ...]:
    return (
        user.username,
        user.email or "-",
        user.role,
        user.tenant or "-",
        "yes" if user.is_staff else "no",
        "yes" if user.is_active else "no",
    )


def cmd_user_list(args: argparse.Namespace) -> int:
    from mirante.auth.commands import list_users
    from mirante.auth.schemas import UserOut

    users = _in_database(lambda session: list_users(session, tenant=args.tenant))
    if args.json:
        print(json.dumps([UserOut.model_validate(user).model_dump(mode="json") for user in users], indent=2))
        return 0
    if not users:
        print(f"no users in tenant {args.tenant}" if args.tenant else "no users")
        return 0
    rows = [USER_COLUMNS, *(_user_row(user) for user in users)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(USER_COLUMNS))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _change_user(username: str, **fields: Any) -> int:
    from mirante.auth.commands import change_user

    user, revoked = _in_database(lambda session: change_user(session, username, **fields))
    state = f"role {user.role}{', staff' if user.is_staff else ''}{'' if user.is_active else ', inactive'}"
    print(f"updated {user.username}: {state}{'; tokens issued before are revoked' if revoked else ''}")
    return 0


def cmd_user_set_role(args: argparse.Namespace) -> int:
    return _change_user(args.username, role=args.role)


def cmd_user_set_staff(args: argparse.Namespace) -> int:
    return _change_user(args.username, is_staff=args.staff == "on")


def cmd_user_set_password(args: argparse.Namespace) -> int:
    return _change_user(args.username, password=_read_new_password())


def cmd_user_deactivate(args: argparse.Namespace) -> int:
    return _change_user(args.username, is_active=False)


def cmd_user_activate(args: argparse.Namespace) -> int:
    return _change_user(args.username, is_active=True)


def cmd_apikey_create(args: argparse.Namespace) -> int:
    from mirante.auth.commands import create_api_key

    expires_at = datetime.now(UTC) + timedelta(days=args.expires_days) if args.expires_days else None

    def work(session: AsyncSession) -> Any:
        return create_api_key(
            session, name=args.name, scopes=args.scope, role=args.role, expires_at=expires_at, tenant=args.tenant
        )

    _key, plaintext = _in_database(work)
    print(plaintext)
    print("(store it now: it is shown only once)", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from mirante.supervisor import serve

    spec = get_service(args.service)
    serve(spec, host=args.host, port=args.port, workers=args.workers)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from mirante.supervisor import run_suite

    return run_suite(args.services, migrate=not args.no_migrate)


def cmd_devstack(args: argparse.Namespace) -> int:
    from mirante.supervisor import run_infra_only

    return run_infra_only()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mirante", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="start the infrastructure, migrate, and run every (or the named) service")
    up.add_argument("services", nargs="*", help="service names (default: all installed)")
    up.add_argument("--no-migrate", action="store_true", help="skip migrations")
    up.set_defaults(handler=cmd_up)

    serve = commands.add_parser("serve", help="run one service in the foreground")
    _add_serve_arguments(serve)
    serve.add_argument("service", help="service name, e.g. cvat-sync")
    serve.set_defaults(handler=cmd_serve)

    migrate = commands.add_parser("migrate", help="apply every Alembic history (identity, then each service)")
    migrate.set_defaults(handler=cmd_migrate)

    devstack = commands.add_parser("devstack", help="start only Postgres, Redis and MQTT and print their URLs")
    devstack.set_defaults(handler=cmd_devstack)

    user = commands.add_parser("user", help="manage users").add_subparsers(dest="user_command", required=True)
    create_user = user.add_parser("create", help="create a user")
    create_user.add_argument("username")
    create_user.add_argument("--password", help=f"asked for when omitted ({PASSWORD_SOURCE})")
    create_user.add_argument("--role", choices=ROLE_CHOICES, default="viewer")
    create_user.add_argument("--staff", action="store_true", help="operator staff: sees every tenant")
    create_user.add_argument("--tenant", help="tenant slug the user belongs to")
    create_user.set_defaults(handler=cmd_user_create)

    list_users = user.add_parser("list", help="list users: username, email, role, tenant, staff, active")
    list_users.add_argument("--tenant", help="only the users of this tenant slug")
    list_users.add_argument("--json", action="store_true", help="print a JSON array (the API's user fields)")
    list_users.set_defaults(handler=cmd_user_list)

    set_role = user.add_parser("set-role", help="change a user's role (a lower role revokes their tokens)")
    set_role.add_argument("username")
    set_role.add_argument("role", choices=ROLE_CHOICES)
    set_role.set_defaults(handler=cmd_user_set_role)

    set_staff = user.add_parser("set-staff", help="grant (on) or take away (off, revokes tokens) staff")
    set_staff.add_argument("username")
    set_staff.add_argument("staff", choices=["on", "off"])
    set_staff.set_defaults(handler=cmd_user_set_staff)

    set_password = user.add_parser(
        "set-password", help=f"set a user's password and revoke their tokens ({PASSWORD_SOURCE})"
    )
    set_password.add_argument("username")
    set_password.set_defaults(handler=cmd_user_set_password)

    deactivate = user.add_parser("deactivate", help="stop a user from signing in and revoke their tokens")
    deactivate.add_argument("username")
    deactivate.set_defaults(handler=cmd_user_deactivate)

    activate = user.add_parser("activate", help="let a deactivated user sign in again")
    activate.add_argument("username")
    activate.set_defaults(handler=cmd_user_activate)

    apikey = commands.add_parser("apikey", help="manage API keys").add_subparsers(dest="apikey_command", required=True)
    create_key = apikey.add_parser("create", help="create an API key and print it once")
    create_key.add_argument("--name", required=True)
    create_key.add_argument("--scope", action="append", required=True, help="repeat for several scopes")
    create_key.add_argument("--role", choices=ROLE_CHOICES, default="viewer")
    create_key.add_argument("--expires-days", type=int, help="expire after this many days")
    create_key.add_argument("--tenant", help="tenant slug the key is bound to: it acts only within that tenant")
    create_key.set_defaults(handler=cmd_apikey_create)
    return parser


def _add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="bind address (default: <PREFIX>HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: <PREFIX>PORT or the service's own)")
    parser.add_argument("--workers", type=int, help="uvicorn worker processes")


def _database_failure(exc: DBAPIError) -> str:
    # The driver's own message, without SQLAlchemy's statement dump and the asyncpg class prefix.
    detail = str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0]
    detail = detail.split(">: ", 1)[-1] if detail.startswith("<class ") else detail
    hint = " (has `mirante migrate` run on this database?)" if "does not exist" in detail else ""
    return f"database: {detail}{hint}"


def _run(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    core = CoreSettings()
    configure_logging(core.log_level, core.json_logs)
    try:
        return handler(args)
    except (CommandError, SettingsError, StackError, MigrationError, UnknownServiceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ApiError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except DBAPIError as exc:
        print(f"error: {_database_failure(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        # Typically a server that refuses the connection; the message names its address.
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return _run(args.handler, args)


def run_service_cli(
    spec: ServiceSpec,
    argv: Sequence[str] | None = None,
    extend: Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None] | None = None,
) -> int:
    """The command of one service (`cvat-sync serve`, plus whatever the service adds through `extend`)."""
    parser = argparse.ArgumentParser(prog=spec.name, description=spec.description)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the service in the foreground")
    _add_serve_arguments(serve)
    serve.set_defaults(handler=cmd_serve, service=spec.name)
    if extend is not None:
        extend(commands)
    args = parser.parse_args(argv)
    return _run(args.handler, args)
