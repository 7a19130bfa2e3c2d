"""What the brokers send to the authentication endpoints and what they expect back.

EMQX 5 renders every placeholder as a JSON string (or form field); mosquitto-go-auth sends JSON (`acc` as a
number) or a form. Numbers are therefore accepted where text is expected, unknown fields are ignored, and a
field the broker did not send is empty (EMQX renders an undefined value as "").
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_FIELD_LENGTH: Final = 1024
MAX_TOPIC_LENGTH: Final = 4096

BrokerText = Annotated[str, Field(max_length=MAX_FIELD_LENGTH)]


class _BrokerRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)


class EmqxAuthnRequest(_BrokerRequest):
    """EMQX 5 HTTP authentication: `body {username, password, clientid, peerhost}` of the authenticator."""

    username: BrokerText = ""
    password: BrokerText = ""
    clientid: BrokerText = ""
    peerhost: BrokerText = ""


class EmqxAuthzRequest(_BrokerRequest):
    """EMQX 5 HTTP authorization: `body {username, clientid, topic, action}` (`access` "1"/"2" also understood)."""

    username: BrokerText = ""
    clientid: BrokerText = ""
    topic: Annotated[str, Field(max_length=MAX_TOPIC_LENGTH)] = ""
    action: BrokerText = Field(default="", description="publish | subscribe")
    access: BrokerText = Field(default="", description="legacy form of action: 1 = subscribe, 2 = publish")
    qos: BrokerText = ""
    retain: BrokerText = ""


class GoAuthUserRequest(_BrokerRequest):
    """mosquitto-go-auth user check (on CONNECT)."""

    username: BrokerText = ""
    password: BrokerText = ""
    clientid: BrokerText = ""


class GoAuthSuperuserRequest(_BrokerRequest):
    """mosquitto-go-auth superuser check (before ACL checks): the username only."""

    username: BrokerText = ""


class GoAuthAclRequest(_BrokerRequest):
    """mosquitto-go-auth ACL check. `acc`: 1 read (delivery to a subscriber), 2 write (publish), 4 subscribe."""

    username: BrokerText = ""
    clientid: BrokerText = ""
    topic: Annotated[str, Field(max_length=MAX_TOPIC_LENGTH)] = ""
    acc: int = Field(default=0, ge=0, le=255)


class EmqxAclRule(BaseModel):
    """One rule of the `acl` EMQX checks before any authorizer (EMQX 5.8+)."""

    permission: Literal["allow", "deny"]
    action: Literal["publish", "subscribe", "all"]
    topic: str


class EmqxAuthnResult(BaseModel):
    """Answer to EMQX authentication, always with status 200 (another status would mean "ignore")."""

    result: Literal["allow", "deny"]
    is_superuser: bool | None = None
    client_attrs: dict[str, str] | None = Field(default=None, description="set on the client: tenant, device_id")
    acl: list[EmqxAclRule] | None = None


class EmqxAuthzResult(BaseModel):
    """Answer to EMQX authorization, always with status 200."""

    result: Literal["allow", "deny"]


class GoAuthResult(BaseModel):
    """Answer to mosquitto-go-auth: status 200 grants, 403 refuses (works with its `status` and `json` modes)."""

    ok: bool
    error: str = ""
