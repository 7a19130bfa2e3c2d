"""A reliable MQTT subscriber: persistent session, QoS 1, acknowledgement only after the handler succeeded.

Delivery is at least once: a message is acknowledged (PUBACK) only after the handler has returned for the
batch that contains it. Anything not acknowledged when the connection ends (handler failure, crash, stop)
is sent again by the broker on the next connection with the same client id, so handlers must be idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Sequence
from typing import Any

import aiomqtt
import paho.mqtt.client as paho

from mirante.aio import cancel_and_wait, raise_if_cancel_requested, wait_event
from mirante.mqtt.batching import Backoff, collect_batch
from mirante.mqtt.connection import (
    MAX_RECEIVE_MAXIMUM,
    MAX_SESSION_EXPIRY,
    MqttProtocol,
    build_client,
    check_protocol,
    on_connack,
    resolve_endpoint,
)
from mirante.mqtt.errors import MqttConfigError
from mirante.mqtt.message import BatchHandler, Message
from mirante.mqtt.publish_decoding import decode_plain_publishes_directly
from mirante.mqtt.topics import qos1_subscription, subscription_filters
from mirante.mqtt.url import MqttEndpoint

log = logging.getLogger("mirante.mqtt")

SHARED_SUBSCRIPTION_WARNING = (
    "MQTT subscriber %s: shared subscription %s. Messages published while this subscriber is offline are lost "
    "if the broker restarts meanwhile on brokers that do not restore shared subscriptions from their "
    "persistence (Mosquitto 2.0 does not); a plain subscription keeps them."
)


class _HandlerFailedError(Exception):
    """The handler raised; the batch stays unacknowledged and the connection is restarted."""


class SubscriberRunner:
    """Subscribe at QoS 1 with a persistent session and feed the handler in acknowledged batches.

    A batch is handed over when it holds `batch_size` messages or `batch_interval` seconds after its first
    message, whichever comes first. If the handler raises, nothing of the batch is acknowledged: the runner
    logs, backs off, reconnects and the broker redelivers. At most `receive_maximum` messages are outstanding
    (the broker enforces it under MQTT 5), which also bounds the in-process buffer; nothing is ever dropped.
    Under MQTT 3.1.1 the broker's own in-flight limit applies instead (20 on a default Mosquitto), so batches
    are then filled by the timer.

    Counters for metrics: `received`, `acked`, `handler_failures`, `reconnects`. `connected` is set while
    connected and subscribed; `session_present` tells whether the broker resumed a stored session.

    `client_id` must stay the same across restarts (the session belongs to it); `topics` are filters, subscribed
    as they are by default. A `group` (None or "" means none) subscribes them as `$share/<group>/<filter>` so the
    workers of a group split the messages; only choose it on a broker that restores shared subscriptions after
    its own restart (Mosquitto 2.0 does not, see `SHARED_SUBSCRIPTION_WARNING`).
    `batch_interval`, `session_expiry` and the backoff delays are in seconds. Bad options raise
    `MqttConfigError` (a `ValueError`), or its subclasses `InvalidMqttUrlError` / `InvalidTopicFilterError`.
    """

    def __init__(
        self,
        url: str | MqttEndpoint,
        *,
        client_id: str,
        topics: Sequence[str],
        handler: BatchHandler,
        group: str | None = None,
        batch_size: int = 500,
        batch_interval: float = 0.5,
        receive_maximum: int = 1000,
        session_expiry: int = 7 * 24 * 3600,
        protocol: MqttProtocol = "5",
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        keepalive: int = 30,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if not isinstance(client_id, str) or not client_id.strip():
            raise MqttConfigError("a fixed, non-empty client id is required for a persistent session")
        if not 1 <= receive_maximum <= MAX_RECEIVE_MAXIMUM:
            raise MqttConfigError(f"receive_maximum must be within 1..{MAX_RECEIVE_MAXIMUM}")
        if not 1 <= batch_size <= receive_maximum:
            raise MqttConfigError("batch_size must be within 1..receive_maximum (the broker sends no more)")
        if not batch_interval > 0:
            raise MqttConfigError("batch_interval must be positive")
        if not 1 <= session_expiry <= MAX_SESSION_EXPIRY:
            raise MqttConfigError("session_expiry must be at least 1 s, or the broker forgets the session")
        if not 0 < backoff_initial <= backoff_max:
            raise MqttConfigError("backoff delays must satisfy 0 < backoff_initial <= backoff_max")
        self.endpoint = resolve_endpoint(url)
        self.client_id = client_id
        self.protocol = check_protocol(protocol)
        self.shared = bool(group)
        self.subscriptions = subscription_filters(topics, group or None)
        self.batch_size = batch_size
        self.batch_interval = batch_interval
        self.receive_maximum = receive_maximum
        self.session_expiry = session_expiry
        self._handler = handler
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._keepalive = keepalive
        self._tls_context = tls_context

        self.received = 0
        self.acked = 0
        self.handler_failures = 0
        self.reconnects = 0
        self.session_present: bool | None = None
        self.connected = asyncio.Event()

        self._stop_requested = asyncio.Event()
        self._stopped = asyncio.Event()
        self._run_task: asyncio.Task[Any] | None = None
        self._consume_task: asyncio.Task[None] | None = None
        self._handling = False
        self._ever_connected = False
        if self.shared:
            log.warning(SHARED_SUBSCRIPTION_WARNING, client_id, ", ".join(self.subscriptions))

    async def run(self) -> None:
        """Receive and handle messages until cancelled or until `stop()` is called.

        Connection errors are retried forever with exponential backoff and jitter. A subscription the broker
        refuses raises `SubscriptionRefusedError`, since retrying cannot fix it.
        """
        if self._run_task is not None:
            raise RuntimeError(f"the subscriber {self.client_id!r} is already running")
        self._run_task = asyncio.current_task()
        self._stopped.clear()
        backoff = Backoff(self._backoff_initial, self._backoff_max)
        loop = asyncio.get_running_loop()
        try:
            while not self._stop_requested.is_set():
                started = loop.time()
                try:
                    await self._connect_and_serve(backoff)
                except aiomqtt.MqttError as exc:
                    # aiomqtt waits with `asyncio.wait_for`, which on Python 3.11 trades a cancellation arriving as
                    # the wait ends for the wait's own outcome, such as the error of a connection taken over: a
                    # cancelled runner must end here, not reconnect and outlive the app that cancelled it.
                    raise_if_cancel_requested()
                    log.warning("MQTT subscriber %s: connection lost or refused: %s", self.client_id, exc)
                    if loop.time() - started >= self._backoff_max:
                        backoff.reset()
                except _HandlerFailedError:
                    raise_if_cancel_requested()
                else:
                    break
                if self._stop_requested.is_set():
                    break
                self.reconnects += 1
                delay = backoff.next_delay()
                log.info("MQTT subscriber %s: reconnecting in %.2f s", self.client_id, delay)
                await wait_event(self._stop_requested, delay)
        finally:
            self.connected.clear()
            self._run_task = None
            # A stop asked for before run() started ends it at once; afterwards the runner can run again.
            self._stop_requested.clear()
            self._stopped.set()

    async def run_until_cancelled(self, grace: float) -> None:
        """Run until the calling task is cancelled, then `stop(grace)` and let the cancellation through.

        For a worker of an app: its shutdown cancels the worker, and a batch being handled then still commits and
        is acknowledged, for up to `grace` seconds even if the cancellation is repeated meanwhile (an app cancels a
        worker again while it runs on, see `mirante.aio.cancel_all_and_wait`). Returns only once `run()` has ended,
        so the subscriber never outlives the worker.
        """
        run = asyncio.create_task(self.run(), name=f"mqtt-subscriber:{self.client_id}")
        try:
            await asyncio.shield(run)
        except asyncio.CancelledError:
            # Only a connected subscriber can be handling a batch; one still connecting has nothing to finish.
            if self.connected.is_set():
                stopping = asyncio.create_task(self.stop(grace))
                while not stopping.done():
                    with contextlib.suppress(asyncio.CancelledError):
                        await asyncio.shield(stopping)
            raise
        finally:
            if not run.done():
                await cancel_and_wait(run)

    async def stop(self, grace: float = 10.0) -> None:
        """Ask `run()` to end and wait until it has.

        A batch still being collected is abandoned unacknowledged (the broker redelivers it to the next
        session); a batch already in the handler may finish and is then acknowledged. After `grace`
        seconds `run()` is cancelled. Called from inside the handler, it only makes `run()` end afterwards.
        """
        self._stop_requested.set()
        if self._run_task is None or asyncio.current_task() is self._consume_task:
            return
        if not await wait_event(self._stopped, grace):
            if self._run_task is not None:
                self._run_task.cancel()
            await self._stopped.wait()

    async def _connect_and_serve(self, backoff: Backoff) -> None:
        client = build_client(
            self.endpoint,
            client_id=self.client_id,
            protocol=self.protocol,
            persistent=True,
            session_expiry=self.session_expiry,
            receive_maximum=self.receive_maximum,
            keepalive=self._keepalive,
            tls_context=self._tls_context,
        )
        on_connack(client, self._record_session_present)
        client._client.manual_ack_set(True)
        if self.protocol == "5":
            decode_plain_publishes_directly(client._client)
        async with client:
            self._log_connected()
            await self._subscribe(client)
            self.connected.set()
            try:
                await self._serve(client, backoff)
            finally:
                self.connected.clear()

    def _record_session_present(self, session_present: bool) -> None:
        self.session_present = session_present

    def _log_connected(self) -> None:
        if self.session_present:
            log.info("MQTT subscriber %s: connected, stored session resumed", self.client_id)
        elif self._ever_connected:
            log.warning(
                "MQTT subscriber %s: connected but the broker had no stored session; messages published "
                "while disconnected are lost (session expired, or broker restarted without persistence)",
                self.client_id,
            )
        else:
            log.info("MQTT subscriber %s: connected with a new session", self.client_id)
        self._ever_connected = True

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        await qos1_subscription(client, self.subscriptions, mqtt5=self.protocol == "5")

    async def _serve(self, client: aiomqtt.Client, backoff: Backoff) -> None:
        buffer: asyncio.Queue[Message] = asyncio.Queue(maxsize=self.receive_maximum)
        pump = asyncio.create_task(self._pump(client, buffer))
        consume = asyncio.create_task(self._consume(client, buffer, backoff))
        stop = asyncio.create_task(self._stop_requested.wait())
        self._consume_task = consume
        tasks = (pump, consume, stop)
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if stop in done and self._handling:
                # The running batch may be committing: let it finish so it is acknowledged, not redelivered.
                await asyncio.wait((pump, consume), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._consume_task = None
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in (consume, pump):
            if not task.cancelled() and (error := task.exception()) is not None:
                raise error

    async def _pump(self, client: aiomqtt.Client, buffer: asyncio.Queue[Message]) -> None:
        # aiomqtt's iterator starts a task per message, which halves throughput; it is only needed to
        # wait (it notices a disconnect), so a backlog is taken straight from its queue.
        arrived = client._queue
        stream = client.messages
        while True:
            incoming = arrived.get_nowait() if not arrived.empty() else await anext(stream)
            self.received += 1
            await buffer.put(
                Message(
                    topic=incoming.topic.value,
                    payload=incoming.payload,
                    qos=incoming.qos,
                    retain=incoming.retain,
                    mid=incoming.mid,
                )
            )

    async def _consume(self, client: aiomqtt.Client, buffer: asyncio.Queue[Message], backoff: Backoff) -> None:
        while not self._stop_requested.is_set():
            batch = await collect_batch(buffer, self.batch_size, self.batch_interval)
            self._handling = True
            try:
                await self._handler(batch)
            except Exception as exc:
                self.handler_failures += 1
                log.exception(
                    "MQTT subscriber %s: handler failed on a batch of %d; not acknowledged, reconnecting "
                    "so that the broker redelivers it",
                    self.client_id,
                    len(batch),
                )
                raise _HandlerFailedError from exc
            finally:
                self._handling = False
            self._acknowledge(client, batch)
            backoff.reset()

    def _acknowledge(self, client: aiomqtt.Client, batch: Sequence[Message]) -> None:
        paho_client = client._client
        for message in batch:
            if message.qos > 0 and paho_client.ack(message.mid, message.qos) != paho.MQTT_ERR_SUCCESS:
                log.warning("MQTT subscriber %s: could not acknowledge; the broker will redeliver", self.client_id)
                return
            self.acked += 1
