"""What a hung asyncio test is waiting on, printed just before pytest-timeout fails it.

pytest-timeout prints the stack of every thread, and a hung asyncio test shows only its event loop waiting in
`select`. A few seconds before the timeout, the plugin interrupts the main thread with a signal and prints every
task of the loop running there with the future it waits for and the chain of coroutines it is suspended in (to
the test's captured stderr, which the failure report shows).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any, TextIO

DUMP_BEFORE_TIMEOUT_SECONDS = 5.0
DUMP_SIGNAL = getattr(signal, "SIGUSR2", None)


def await_chain(task: asyncio.Task[Any]) -> Iterator[FrameType | object]:
    """The frames of the coroutines `task` is suspended in, outermost first, then what the innermost awaits
    (a future's iterator, a generator...)."""
    awaited: Any = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        frame = frame or getattr(awaited, "ag_frame", None)
        if frame is None:
            yield awaited
            return
        yield frame
        awaited = (
            getattr(awaited, "cr_await", None)
            or getattr(awaited, "gi_yieldfrom", None)
            or getattr(awaited, "ag_await", None)
        )


def print_tasks(loop: asyncio.AbstractEventLoop, file: TextIO) -> None:
    tasks = asyncio.all_tasks(loop)
    print(f"~~~~~ {len(tasks)} asyncio tasks of the running loop ~~~~~", file=file)
    for task in sorted(tasks, key=lambda t: t.get_name()):
        # The task's repr names the future it waits for (`wait_for=`); the chain shows where it waits.
        print(f"task {task.get_name()}: {task!r}", file=file)
        for link in await_chain(task):
            if isinstance(link, FrameType):
                print(f"  {link.f_code.co_filename}:{link.f_lineno} in {link.f_code.co_name}", file=file)
    file.flush()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        print("~~~~~ no asyncio loop running in the main thread ~~~~~", file=sys.stderr)
        return
    print_tasks(loop, sys.stderr)


def install_dump_signal() -> bool:
    """Print the tasks on `DUMP_SIGNAL` (also by hand: `kill -USR2 <pid of pytest>`) unless the signal has a
    handler already; True when installed."""
    if DUMP_SIGNAL is None or threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(DUMP_SIGNAL) not in (signal.SIG_DFL, None):
        return False
    signal.signal(DUMP_SIGNAL, _on_signal)
    return True


class TaskDumpTimer:
    """Sends `DUMP_SIGNAL` to the main thread `delay` seconds from `start()` unless cancelled first."""

    def __init__(self, delay: float) -> None:
        self._main = threading.main_thread().ident
        self._timer = threading.Timer(delay, self._interrupt_main_thread)
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()

    def _interrupt_main_thread(self) -> None:
        if DUMP_SIGNAL is not None and self._main is not None:
            signal.pthread_kill(self._main, DUMP_SIGNAL)
