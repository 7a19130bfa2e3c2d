"""Who is reporting: the machine of the bearer credential, or of a valid Standard Webhooks signature.

A call may carry either or both. With a credential, a signature that is present is checked too when the
machine has a webhook secret (a forged one is refused even with a good credential). Without a credential, the
signature alone identifies the machine: the body's `machine_id` names whose secret to check it with. Every
refusal is 401 with the same code, and is logged without any secret or header value.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.db import Session
from mirante.webhooks.signatures import WEBHOOK_SIGNATURE_HEADER, SignatureError, verify_standard
from vision_orchestrator.config import Settings
from vision_orchestrator.deps import AppSettings
from vision_orchestrator.machines import repository
from vision_orchestrator.machines.deps import bearer_machine, machine_credential_scheme
from vision_orchestrator.machines.errors import InvalidMachineCredentialError
from vision_orchestrator.tables import Machine, MachineCredential

logger = logging.getLogger(__name__)


def _claimed_machine(body: bytes) -> str | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    claimed = document.get("machine_id") if isinstance(document, dict) else None
    return claimed if isinstance(claimed, str) and len(claimed) <= 64 else None


def _check_signature(request: Request, body: bytes, credential: MachineCredential, settings: Settings) -> None:
    if credential.webhook_secret is None:
        raise InvalidMachineCredentialError("this machine has no webhook secret: authenticate with its credential")
    try:
        verify_standard(
            credential.webhook_secret,
            request.headers,
            body,
            tolerance=settings.webhook_signature_tolerance_seconds,
        )
    except SignatureError as error:
        logger.warning("refused a report signed for machine %s: %s", credential.machine_id, error)
        raise InvalidMachineCredentialError(f"invalid webhook signature: {error}") from None


async def _signed_machine(session: AsyncSession, body: bytes) -> tuple[Machine, MachineCredential]:
    machine_id = _claimed_machine(body)
    found = None if machine_id is None else await repository.active_credential_with_machine(session, machine_id)
    if found is None:
        raise InvalidMachineCredentialError("invalid webhook signature")
    credential, machine = found
    return machine, credential


async def reporting_machine(
    request: Request,
    session: Session,
    settings: AppSettings,
    _declared: Annotated[object, Depends(machine_credential_scheme)],
) -> Machine:
    """The machine a webhook call comes from; 401 when neither its credential nor its signature holds."""
    signed = WEBHOOK_SIGNATURE_HEADER in request.headers
    found = await bearer_machine(request, session)
    if found is None and not signed:
        raise InvalidMachineCredentialError(
            "machine credential required: send 'Authorization: Bearer mvc_...' or a Standard Webhooks signature"
        )
    if not signed:
        assert found is not None
        return found[0]
    body = await request.body()
    if found is not None:
        machine, credential = found
        if credential.webhook_secret is not None:
            _check_signature(request, body, credential, settings)
        return machine
    machine, credential = await _signed_machine(session, body)
    _check_signature(request, body, credential, settings)
    return machine


ReportingMachine = Annotated[Machine, Depends(reporting_machine)]
