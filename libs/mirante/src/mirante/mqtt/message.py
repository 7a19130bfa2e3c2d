"""The message handed to batch handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Message:
    """One received message; `mid` is the packet id it is acknowledged with."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int


BatchHandler = Callable[[Sequence[Message]], Awaitable[None]]
"""`async def handler(messages: Sequence[Message]) -> None`; raising leaves the batch unacknowledged."""
