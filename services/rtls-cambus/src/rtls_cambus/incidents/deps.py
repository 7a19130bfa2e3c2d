"""Request dependencies of incidents' own objects."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mirante.bus import TypeInterest


async def get_rule_interest(request: Request) -> TypeInterest:
    interest: TypeInterest = request.app.state.incident_rule_interest
    return interest


RuleInterest = Annotated[TypeInterest, Depends(get_rule_interest)]
"""The types incident rules are on, as the engine's consumer knows them; a change to rules bumps it."""
