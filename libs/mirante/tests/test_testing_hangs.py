"""What a hung asyncio test waits on: each task of the loop with its chain of coroutines, printed on a signal."""

from __future__ import annotations

import asyncio
import io
import signal

import pytest

from mirante.testing import hangs


async def stuck_inside(gate: asyncio.Event) -> None:
    await gate.wait()


async def stuck_outside(gate: asyncio.Event) -> None:
    await stuck_inside(gate)


async def test_each_task_is_printed_with_its_future_and_the_coroutines_it_waits_in() -> None:
    gate = asyncio.Event()
    task = asyncio.create_task(stuck_outside(gate), name="the-stuck-one")
    await asyncio.sleep(0)
    out = io.StringIO()
    try:
        hangs.print_tasks(asyncio.get_running_loop(), out)
    finally:
        gate.set()
        await task
    printed = out.getvalue()
    block = printed[printed.index("task the-stuck-one:") :]
    assert "wait_for=<Future pending" in block.splitlines()[0]
    assert block.index("in stuck_outside") < block.index("in stuck_inside") < block.index("in wait")


@pytest.mark.skipif(hangs.DUMP_SIGNAL is None, reason="needs SIGUSR2")
async def test_the_timer_prints_the_tasks_from_the_main_thread(capsys: pytest.CaptureFixture[str]) -> None:
    assert hangs.DUMP_SIGNAL is not None
    # The plugin installed the handler when pytest started; the signal is never left to its default (exit).
    assert signal.getsignal(hangs.DUMP_SIGNAL) is hangs._on_signal
    gate = asyncio.Event()
    task = asyncio.create_task(stuck_outside(gate), name="waiting-for-the-timer")
    timer = hangs.TaskDumpTimer(0.05)
    timer.start()
    try:
        for _ in range(200):
            await asyncio.sleep(0.01)
            if "task waiting-for-the-timer:" in capsys.readouterr().err:
                break
        else:
            raise AssertionError("the tasks were not printed")
    finally:
        timer.cancel()
        gate.set()
        await task
