"""The MQTT subscriber runner against the real broker.

Batches are handed to the handler and acknowledged only after it returns; nothing is lost while the subscriber
is stopped, after a failed batch, or after the process is killed; shared subscriptions split the messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from mirante.devstack import StackUrls
from mirante.mqtt import (
    InvalidMqttUrlError,
    InvalidTopicFilterError,
    Message,
    MqttConfigError,
    MqttProtocol,
    SubscriberRunner,
    discard_session,
    parse_mqtt_url,
    publish,
)
from mirante.mqtt.connection import build_client

URL = ""  # this run's broker, set by `broker` below


@pytest.fixture(scope="module", autouse=True)
def broker(mirante_urls: StackUrls) -> None:
    global URL
    if os.environ.get("MIRANTE_MQTT_PROTOCOL") == "3.1.1":
        pytest.skip("the embedded amqtt broker speaks MQTT 3.1.1 only and drops messages queued for offline sessions")
    URL = mirante_urls.mqtt_url


SUBSCRIBER_PROCESS = Path(__file__).with_name("mqtt_subscriber_process.py")


class Recorder:
    """A batch handler that records what it committed, and can fail its first calls."""

    def __init__(self, failures: int = 0, delay: float = 0.0) -> None:
        self.batches: list[list[bytes]] = []
        self.failures_left = failures
        self.delay = delay
        self.called = asyncio.Event()

    async def __call__(self, messages: Sequence[Message]) -> None:
        self.called.set()
        await asyncio.sleep(self.delay)
        if self.failures_left > 0:
            self.failures_left -= 1
            raise RuntimeError("simulated failure before commit")
        self.batches.append([message.payload for message in messages])

    @property
    def payloads(self) -> list[bytes]:
        return [payload for batch in self.batches for payload in batch]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def numbered(prefix: str, count: int, start: int = 0) -> list[bytes]:
    return [f"{prefix}-{index}".encode() for index in range(start, start + count)]


@pytest.fixture
async def sessions() -> AsyncIterator[Callable[[str, MqttProtocol], str]]:
    """Register client ids; their broker sessions are removed after the test."""
    registered: list[tuple[str, MqttProtocol]] = []

    def register(client_id: str, protocol: MqttProtocol = "5") -> str:
        registered.append((client_id, protocol))
        return client_id

    yield register
    for client_id, protocol in registered:
        await discard_session(URL, client_id, protocol=protocol)


@contextlib.asynccontextmanager
async def running(runner: SubscriberRunner) -> AsyncIterator[asyncio.Task[None]]:
    """Run the subscriber in a task until the block ends, then cancel it."""
    task = asyncio.create_task(runner.run())
    try:
        # Generous: a (re)connection to a broker on a machine busy with other runs can take seconds.
        await asyncio.wait_for(runner.connected.wait(), 30)
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def wait_until(condition: Callable[[], bool], within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def runner_for(topic: str, handler: Recorder, client_id: str, **options: Any) -> SubscriberRunner:
    options.setdefault("batch_interval", 0.2)
    options.setdefault("backoff_initial", 0.05)
    options.setdefault("backoff_max", 0.2)
    options.setdefault("session_expiry", 300)
    return SubscriberRunner(URL, client_id=client_id, topics=[f"{topic}/#"], handler=handler, **options)


async def test_batches_are_handled_then_acknowledged_and_not_sent_again(
    sessions: Callable[..., str],
) -> None:
    topic, client_id = unique("mirante-test/batches"), sessions(unique("batches"))
    expected = numbered("m", 50)
    recorder = Recorder()
    runner = runner_for(topic, recorder, client_id, batch_size=20)
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(runner.connected.wait(), 5)
    assert runner.session_present is False

    await publish(URL, f"{topic}/device-1", expected)
    await wait_until(lambda: runner.acked == 50)

    sizes = [len(batch) for batch in recorder.batches]
    assert max(sizes) == 20
    assert sum(sizes) == 50
    assert sorted(recorder.payloads) == sorted(expected)
    assert (runner.received, runner.handler_failures) == (50, 0)
    await runner.stop()
    assert task.done()
    assert not task.cancelled()

    again = Recorder()
    resumed = runner_for(topic, again, client_id, batch_size=20)
    async with running(resumed):
        assert resumed.session_present is True
        await asyncio.sleep(0.5)
    assert again.payloads == []


async def test_receive_maximum_lets_a_batch_grow_past_the_broker_inflight_limit(
    sessions: Callable[..., str],
) -> None:
    topic, client_id = unique("mirante-test/receive-max"), sessions(unique("receive-max"))
    recorder = Recorder()
    runner = runner_for(topic, recorder, client_id, batch_size=300, batch_interval=5.0)
    async with running(runner):
        loop = asyncio.get_running_loop()
        started = loop.time()
        await publish(URL, f"{topic}/device-1", numbered("m", 300))
        await wait_until(lambda: runner.acked == 300, within=4.0)
        assert loop.time() - started < 4.0  # the batch filled up; it did not wait for its 5 s timer
    assert [len(batch) for batch in recorder.batches] == [300]


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_nothing_is_lost_while_the_subscriber_is_down(
    sessions: Callable[..., str], protocol: MqttProtocol
) -> None:
    topic, client_id = unique("mirante-test/restart"), sessions(unique("restart"), protocol)
    before, while_down = numbered("before", 200), numbered("down", 300)
    first = Recorder(delay=0.05)
    runner = runner_for(topic, first, client_id, batch_size=20, protocol=protocol)
    async with running(runner):
        await publish(URL, f"{topic}/device-1", before)
        await wait_until(lambda: runner.acked >= 40)
    assert runner.acked < len(before)  # stopped with messages received but not yet committed

    await publish(URL, f"{topic}/device-2", while_down)

    second = Recorder()
    restarted = runner_for(topic, second, client_id, batch_size=20, protocol=protocol)
    everything = set(before + while_down)
    async with running(restarted):
        assert restarted.session_present is True
        await wait_until(lambda: set(first.payloads) | set(second.payloads) == everything, within=10.0)
    assert set(second.payloads) >= set(while_down)


async def test_a_lost_connection_is_reestablished_with_the_same_session(sessions: Callable[..., str]) -> None:
    topic, client_id = unique("mirante-test/reconnect"), sessions(unique("reconnect"))
    recorder = Recorder()
    runner = runner_for(topic, recorder, client_id, batch_size=10)
    async with running(runner):
        # A second connection with the same client id makes the broker drop the runner's connection.
        intruder = build_client(
            parse_mqtt_url(URL), client_id=client_id, persistent=True, session_expiry=300, receive_maximum=1
        )
        async with intruder:
            await wait_until(lambda: runner.reconnects >= 1 and runner.connected.is_set())
        assert runner.session_present is True
        await publish(URL, f"{topic}/device-1", numbered("m", 20))
        await wait_until(lambda: runner.acked == 20)
    assert sorted(recorder.payloads) == sorted(numbered("m", 20))


async def test_a_cancellation_that_comes_back_as_a_connection_error_still_ends_the_runner(
    sessions: Callable[..., str],
) -> None:
    client_id = sessions(unique("swallowed"))
    runner = runner_for(unique("mirante-test/swallowed"), Recorder(), client_id)
    serve = runner._connect_and_serve

    async def serve_losing_the_cancellation(backoff: Any) -> None:
        # What aiomqtt's `asyncio.wait_for` does on Python 3.11 when the broker ends the connection (another
        # client took the session over) just as the cancellation arrives.
        try:
            await serve(backoff)
        except asyncio.CancelledError:
            raise aiomqtt.MqttError("Disconnected during message iteration") from None

    runner._connect_and_serve = serve_losing_the_cancellation  # type: ignore[method-assign]
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(runner.connected.wait(), 30)
        task.cancel()
        await asyncio.wait({task}, timeout=5)
        assert task.cancelled(), "the runner went on after its cancellation"
        assert runner.reconnects == 0
    finally:
        await runner.stop(grace=1)


async def test_a_failed_batch_is_redelivered_and_then_handled_once(sessions: Callable[..., str]) -> None:
    topic, client_id = unique("mirante-test/failure"), sessions(unique("failure"))
    expected = numbered("m", 40)
    recorder = Recorder(failures=1)
    runner = runner_for(topic, recorder, client_id, batch_size=10)
    async with running(runner):
        await publish(URL, f"{topic}/device-1", expected)
        await wait_until(lambda: runner.acked == 40)
        await asyncio.sleep(0.3)
    assert sorted(recorder.payloads) == sorted(expected)
    assert runner.handler_failures == 1
    assert runner.reconnects >= 1
    assert runner.acked == 40


async def test_stop_lets_the_running_batch_commit_and_leaves_the_rest_for_the_next_session(
    sessions: Callable[..., str],
) -> None:
    topic, client_id = unique("mirante-test/stop"), sessions(unique("stop"))
    expected = numbered("m", 25)
    slow = Recorder(delay=0.3)
    runner = runner_for(topic, slow, client_id, batch_size=10)
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(runner.connected.wait(), 5)
    await publish(URL, f"{topic}/device-1", expected)
    await asyncio.wait_for(slow.called.wait(), 5)
    await runner.stop()
    assert task.done()
    assert not task.cancelled()
    assert [len(batch) for batch in slow.batches] == [10]
    assert runner.acked == 10

    rest = Recorder()
    async with running(runner_for(topic, rest, client_id, batch_size=10)):
        await wait_until(lambda: len(rest.payloads) >= 15)
        await asyncio.sleep(0.3)
    assert sorted(rest.payloads) == sorted(set(expected) - set(slow.payloads))


async def test_a_worker_cancelled_twice_still_lets_its_running_batch_commit(sessions: Callable[..., str]) -> None:
    topic, client_id = unique("mirante-test/worker"), sessions(unique("worker"))
    slow = Recorder(delay=1.0)
    runner = runner_for(topic, slow, client_id, batch_size=10)
    worker = asyncio.create_task(runner.run_until_cancelled(grace=10))
    await asyncio.wait_for(runner.connected.wait(), 30)
    await publish(URL, f"{topic}/device-1", numbered("m", 10))
    await asyncio.wait_for(slow.called.wait(), 5)
    worker.cancel()
    await asyncio.sleep(0.2)
    worker.cancel()  # as an app does to a worker that runs on after its cancellation
    with pytest.raises(asyncio.CancelledError):
        await worker
    assert [len(batch) for batch in slow.batches] == [10]
    assert runner.acked == 10
    assert not runner.connected.is_set()


async def test_a_worker_cancelled_while_connecting_ends_at_once() -> None:
    runner = SubscriberRunner(
        "mqtt://127.0.0.1:9", client_id=unique("unreachable"), topics=["mirante-test/#"], handler=Recorder()
    )
    worker = asyncio.create_task(runner.run_until_cancelled(grace=10))
    await asyncio.sleep(0.3)
    worker.cancel()
    done, _ = await asyncio.wait({worker}, timeout=2)
    assert done and worker.cancelled()


async def test_a_killed_subscriber_gets_its_uncommitted_messages_back(sessions: Callable[..., str]) -> None:
    topic, client_id = unique("mirante-test/crash"), sessions(unique("crash"))
    expected = numbered("m", 30)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SUBSCRIBER_PROCESS),
        URL,
        client_id,
        f"{topic}/#",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 15)
        assert line.strip() == b"connected"
        await publish(URL, f"{topic}/device-1", expected)
        line = await asyncio.wait_for(process.stdout.readline(), 5)
        assert line.startswith(b"received ")
    finally:
        process.kill()
        await process.wait()

    recorder = Recorder()
    runner = runner_for(topic, recorder, client_id, batch_size=100)
    async with running(runner):
        assert runner.session_present is True
        await wait_until(lambda: set(recorder.payloads) == set(expected))


async def test_a_shared_subscription_splits_messages_between_workers(sessions: Callable[..., str]) -> None:
    topic, group = unique("mirante-test/shared"), unique("group")
    expected = numbered("m", 200)
    first, second = Recorder(), Recorder()
    worker_a = runner_for(topic, first, sessions(unique("shared-a")), batch_size=10, group=group)
    worker_b = runner_for(topic, second, sessions(unique("shared-b")), batch_size=10, group=group)
    assert worker_a.subscriptions == (f"$share/{group}/{topic}/#",)
    async with running(worker_a), running(worker_b):
        await publish(URL, f"{topic}/device-1", expected)
        await wait_until(lambda: worker_a.acked + worker_b.acked == 200)
        await asyncio.sleep(0.2)
    assert first.payloads
    assert second.payloads
    assert sorted(first.payloads + second.payloads) == sorted(expected)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "http://127.0.0.1:1883",
        "mqtt://",
        "mqtt://broker:not-a-port",
        "mqtt://broker:70000",
        "mqtt://broker:1883/some/path",
        "mqtt://broker:1883?client=1",
        "mqtt://:secret@broker:1883",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidMqttUrlError):
        parse_mqtt_url(url)
    with pytest.raises(ValueError, match="MQTT URL"):
        SubscriberRunner(url, client_id="x", topics=["a/#"], handler=Recorder())


def test_good_urls_are_parsed() -> None:
    endpoint = parse_mqtt_url("mqtt://ingest:p%40ss@broker.example:1884")
    assert (endpoint.host, endpoint.port, endpoint.username, endpoint.password, endpoint.tls) == (
        "broker.example",
        1884,
        "ingest",
        "p@ss",
        False,
    )
    assert "p@ss" not in repr(endpoint)
    secure = parse_mqtt_url("mqtts://broker.example")
    assert (secure.port, secure.tls, secure.username) == (8883, True, None)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"client_id": " "}, MqttConfigError),
        ({"batch_size": 2000}, MqttConfigError),
        ({"session_expiry": 0}, MqttConfigError),
        ({"protocol": "3.1"}, MqttConfigError),
        ({"topics": ["a/#/b"]}, InvalidTopicFilterError),
        ({"topics": []}, InvalidTopicFilterError),
        ({"group": "a/b"}, InvalidTopicFilterError),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], error: type[Exception]) -> None:
    arguments: dict[str, Any] = {"client_id": "x", "topics": ["a/#"], "handler": Recorder(), **options}
    with pytest.raises(error):
        SubscriberRunner(URL, **arguments)


def test_subscriptions_are_plain_unless_a_share_group_is_chosen(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="mirante.mqtt"):
        plain = SubscriberRunner(URL, client_id="plain", topics=["a/#"], handler=Recorder())
        empty = SubscriberRunner(URL, client_id="empty", topics=["a/#"], handler=Recorder(), group="")
    assert (plain.subscriptions, plain.shared) == (("a/#",), False)
    assert (empty.subscriptions, empty.shared) == (("a/#",), False)
    assert not caplog.records
    with caplog.at_level("WARNING", logger="mirante.mqtt"):
        shared = SubscriberRunner(URL, client_id="shared", topics=["a/#"], handler=Recorder(), group="g")
    assert (shared.subscriptions, shared.shared) == (("$share/g/a/#",), True)
    assert "Mosquitto 2.0 does not" in caplog.text
