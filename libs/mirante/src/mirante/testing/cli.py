"""Running a service's console entry point inside the test process, with only the environment a test gives."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping, Sequence

import pytest


async def run_entry_point(
    main: Callable[[list[str]], int],
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    env_prefixes: tuple[str, ...],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[int, str, str]:
    """`main(args)` in a worker thread (it runs its own event loop), with every variable starting with one of
    `env_prefixes` removed and `env` set; returns the exit code and what it printed to stdout and stderr. The
    root logger is restored afterwards, since a command configures logging for its process."""
    for key in [key for key in os.environ if key.startswith(env_prefixes)]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    capsys.readouterr()
    try:
        code = await asyncio.to_thread(main, list(args))
    finally:
        root.handlers[:], root.level = handlers, level
    out, err = capsys.readouterr()
    return code, out, err
