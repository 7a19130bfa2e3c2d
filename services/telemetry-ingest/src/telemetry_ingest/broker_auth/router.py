"""Endpoints the MQTT broker calls to authenticate and authorize clients: `/api/v1/mqtt/...`.

Callers are brokers, not users. Each request must carry the shared secret `broker_auth_secret`, in the header
`X-Broker-Secret` (EMQX: `headers` of the authenticator) or as the password of HTTP Basic auth (mosquitto-go-auth,
which cannot send headers: `auth_opt_http_host broker:<secret>@<host>`). Without the setting every endpoint answers
503; a missing or wrong secret gets 401.

Parameters come as JSON, as a form, or in the query string (EMQX `method = get`).

- EMQX 5 wants status 200 with `{"result": "allow" | "deny"}`: any other status means "ignore" to it, which
  could let another authenticator decide. So its endpoints deny with 200, malformed requests included.
- mosquitto-go-auth grants on any 2xx and refuses on 4xx (5xx means "error" to it). Its endpoints answer 200
  `{"ok": true}` or 403 `{"ok": false, "error": ...}`, which its `status` and `json` response modes both read,
  and 400 for a request they cannot read.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Final, TypeVar
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from mirante.db import Session
from mirante.web.errors import UnauthorizedError
from telemetry_ingest.broker_auth.errors import BrokerAuthNotConfiguredError, UnreadableRequestError
from telemetry_ingest.broker_auth.schemas import (
    EmqxAclRule,
    EmqxAuthnRequest,
    EmqxAuthnResult,
    EmqxAuthzRequest,
    EmqxAuthzResult,
    GoAuthAclRequest,
    GoAuthResult,
    GoAuthSuperuserRequest,
    GoAuthUserRequest,
)
from telemetry_ingest.broker_auth.service import (
    BrokerAuthService,
    Decision,
    access_of_emqx,
    access_of_mosquitto,
)
from telemetry_ingest.deps import AppSettings
from telemetry_ingest.devices.identity import sensor_topic_filter

logger = logging.getLogger(__name__)

BROKER_SECRET_HEADER: Final = "X-Broker-Secret"
PREFIX: Final = "/api/v1/mqtt"

Model = TypeVar("Model", bound=BaseModel)


def _presented_secret(request: Request) -> str | None:
    header = request.headers.get(BROKER_SECRET_HEADER)
    if header is not None:
        return header
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, separator, password = decoded.partition(":")
    return password if separator else None


async def require_broker(request: Request, settings: AppSettings) -> None:
    """Admit only the broker: 503 when no secret is configured, 401 when the request does not carry it."""
    expected = settings.broker_auth_secret
    if expected is None:
        raise BrokerAuthNotConfiguredError(
            "broker authentication is not configured: set TELEMETRY_INGEST_BROKER_AUTH_SECRET and send it from "
            f"the broker in the {BROKER_SECRET_HEADER} header (or as the HTTP Basic password)"
        )
    presented = _presented_secret(request)
    if presented is None or not hmac.compare_digest(presented.encode(), expected.get_secret_value().encode()):
        raise UnauthorizedError(
            f"missing or wrong broker secret: send it in the {BROKER_SECRET_HEADER} header or as the HTTP Basic "
            "password",
            headers={"WWW-Authenticate": 'Basic realm="mirante-broker"'},
        )


router = APIRouter(prefix=PREFIX, tags=["broker authentication"], dependencies=[Depends(require_broker)])


async def broker_service(request: Request, session: Session, settings: AppSettings) -> BrokerAuthService:
    return BrokerAuthService(session, settings, getattr(request.app.state, "rate_limiter", None))


Broker = Annotated[BrokerAuthService, Depends(broker_service)]


async def _fields(request: Request) -> dict[str, Any]:
    """The request's parameters: the query string, overlaid by a JSON object or form body."""
    fields: dict[str, Any] = dict(request.query_params)
    body = await request.body()
    if not body.strip():
        return fields
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        try:
            fields.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            raise UnreadableRequestError("the form is not UTF-8") from None
        return fields
    if media_type not in ("", "application/json") and not media_type.endswith("+json"):
        raise UnreadableRequestError(f"unsupported content type {media_type!r}: send JSON or a form")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UnreadableRequestError("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise UnreadableRequestError("the body must be a JSON object")
    fields.update(data)
    return fields


async def _read(request: Request, model: type[Model]) -> Model:
    """The request's parameters as `model`; `UnreadableRequestError` saying what is wrong."""
    try:
        return model.model_validate(await _fields(request))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors()[:5])
        raise UnreadableRequestError(f"invalid broker request: {problems}") from None


def _documented(model: type[BaseModel], *, in_query: bool = False) -> dict[str, Any]:
    """The parameters of `model` in the description: as a JSON or form body, or (`in_query`) as query parameters."""
    schema = model.model_json_schema()
    if in_query:
        return {
            "parameters": [
                {"name": name, "in": "query", "required": False, "schema": field}
                for name, field in schema["properties"].items()
            ]
        }
    return {
        "requestBody": {
            "required": False,
            "content": {
                "application/json": {"schema": schema},
                "application/x-www-form-urlencoded": {"schema": schema},
            },
        }
    }


BROKER_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "the broker secret is missing or wrong"},
    503: {"description": "broker authentication is not configured"},
}


# --- EMQX 5 -------------------------------------------------------------------------------------------------


def _emqx_allow(decision: Decision) -> EmqxAuthnResult:
    if decision.superuser or decision.device is None:
        return EmqxAuthnResult(result="allow", is_superuser=True)
    device = decision.device
    return EmqxAuthnResult(
        result="allow",
        is_superuser=False,
        client_attrs={"tenant": device.tenant, "device_id": device.device_id},
        acl=[
            EmqxAclRule(
                permission="allow", action="publish", topic=sensor_topic_filter(device.tenant, device.device_id)
            ),
            EmqxAclRule(permission="deny", action="all", topic="#"),
        ],
    )


async def _emqx_request(request: Request, model: type[Model]) -> Model | None:
    try:
        return await _read(request, model)
    except UnreadableRequestError as error:
        logger.warning("EMQX %s: refused an unreadable request: %s", request.url.path, error.message)
        return None


async def emqx_authenticate(request: Request, broker: Broker) -> EmqxAuthnResult:
    """Authenticate a client connecting to EMQX 5 (authenticator `backend = http`).

    Always 200: `{"result": "allow", ...}` with, for a device, `client_attrs` (tenant, device_id) and an `acl`
    allowing publish to its own sensor topics and denying everything else; `{"result": "deny"}` otherwise.
    """
    params = await _emqx_request(request, EmqxAuthnRequest)
    if params is None:
        return EmqxAuthnResult(result="deny")
    decision = await broker.authenticate(params.username, params.password, params.clientid)
    return _emqx_allow(decision) if decision.allowed else EmqxAuthnResult(result="deny")


async def emqx_authorize(request: Request, broker: Broker) -> EmqxAuthzResult:
    """Authorize a publish or subscribe on EMQX 5 (authorization source `type = http`).

    Always 200 with `{"result": "allow" | "deny"}`: devices may publish only to their own sensor topics and may
    not subscribe; superusers may do everything.
    """
    params = await _emqx_request(request, EmqxAuthzRequest)
    if params is None:
        return EmqxAuthzResult(result="deny")
    access = access_of_emqx(params.action, params.access)
    decision = await broker.authorize(params.username, params.clientid, params.topic, access)
    return EmqxAuthzResult(result="allow" if decision.allowed else "deny")


# --- mosquitto-go-auth --------------------------------------------------------------------------------------

GO_AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    **BROKER_RESPONSES,
    403: {"model": GoAuthResult, "description": "refused"},
    400: {"description": "a request the endpoint cannot read (refused by the plugin too)"},
}


def _go_auth(decision: Decision) -> JSONResponse:
    if decision.allowed:
        return JSONResponse(GoAuthResult(ok=True).model_dump())
    return JSONResponse(
        GoAuthResult(ok=False, error=decision.reason).model_dump(), status_code=status.HTTP_403_FORBIDDEN
    )


async def go_auth_user(request: Request, broker: Broker) -> JSONResponse:
    """Authenticate a client connecting to Mosquitto (mosquitto-go-auth HTTP backend, `getuser_uri`)."""
    params = await _read(request, GoAuthUserRequest)
    return _go_auth(await broker.authenticate(params.username, params.password, params.clientid))


async def go_auth_superuser(request: Request, broker: Broker) -> JSONResponse:
    """200 when the username is a configured superuser (`superuser_uri`): it then skips every ACL check."""
    params = await _read(request, GoAuthSuperuserRequest)
    if broker.is_superuser(params.username):
        return _go_auth(Decision(allowed=True, reason="superuser", superuser=True))
    return _go_auth(Decision(allowed=False, reason="not a superuser"))


async def go_auth_acl(request: Request, broker: Broker) -> JSONResponse:
    """Authorize a publish (`acc` 2), subscribe (4) or delivery (1) on Mosquitto (`aclcheck_uri`).

    Devices may publish only to their own sensor topics; superusers may do everything.
    """
    params = await _read(request, GoAuthAclRequest)
    access = access_of_mosquitto(params.acc)
    return _go_auth(await broker.authorize(params.username, params.clientid, params.topic, access))


# --- routes ---------------------------------------------------------------------------------------------------

EMQX_METHODS: Final = ("POST", "GET")
"""EMQX may also be configured with `method = get` (parameters in the query string)."""
GO_AUTH_METHODS: Final = ("POST", "GET", "PUT")
"""mosquitto-go-auth's `auth_opt_http_method` may be POST, GET or PUT (it sends a body with each)."""


def _add(
    path: str,
    endpoint: Callable[..., Any],
    model: type[BaseModel],
    methods: Sequence[str],
    *,
    query_on_get: bool = False,
    **documentation: Any,
) -> None:
    """Route `path` for each of `methods`, all documented; `query_on_get` documents GET's query parameters."""
    for method in methods:
        in_query = query_on_get and method == "GET"
        router.add_api_route(
            path,
            endpoint,
            methods=[method],
            openapi_extra=_documented(model, in_query=in_query),
            **documentation,
        )


_add(
    "/emqx/authn",
    emqx_authenticate,
    EmqxAuthnRequest,
    EMQX_METHODS,
    query_on_get=True,
    response_model=EmqxAuthnResult,
    response_model_exclude_none=True,
    responses=BROKER_RESPONSES,
    summary="EMQX 5 HTTP authentication",
)
_add(
    "/emqx/authz",
    emqx_authorize,
    EmqxAuthzRequest,
    EMQX_METHODS,
    query_on_get=True,
    response_model=EmqxAuthzResult,
    responses=BROKER_RESPONSES,
    summary="EMQX 5 HTTP authorization",
)
_add(
    "/go-auth/user",
    go_auth_user,
    GoAuthUserRequest,
    GO_AUTH_METHODS,
    response_model=GoAuthResult,
    responses=GO_AUTH_RESPONSES,
    summary="mosquitto-go-auth user check",
)
_add(
    "/go-auth/superuser",
    go_auth_superuser,
    GoAuthSuperuserRequest,
    GO_AUTH_METHODS,
    response_model=GoAuthResult,
    responses=GO_AUTH_RESPONSES,
    summary="mosquitto-go-auth superuser check",
)
_add(
    "/go-auth/acl",
    go_auth_acl,
    GoAuthAclRequest,
    GO_AUTH_METHODS,
    response_model=GoAuthResult,
    responses=GO_AUTH_RESPONSES,
    summary="mosquitto-go-auth ACL check",
)
