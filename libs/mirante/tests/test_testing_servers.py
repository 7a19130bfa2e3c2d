"""The test servers services' tests rely on: the webhook receiver checks signatures as the specification says, the
mail server catches what it is sent, and a Redis of a test's own tells when consumer groups are there."""

from __future__ import annotations

import asyncio
import smtplib
import time
from email.message import EmailMessage

import httpx
import pytest
from redis.asyncio import Redis

from mirante.testing.mail import MailServer
from mirante.testing.network import free_port
from mirante.testing.streams import WaitTimeoutError, wait_for_consumer_groups, wait_until
from mirante.testing.webhooks import WebhookReceiverStarter
from mirante.webhooks.signatures import generate_standard_secret, sign_standard

BODY = b'{"type":"test.thing.happened"}'


async def test_the_receiver_takes_what_the_library_signs_and_refuses_the_rest(
    start_webhook_receiver: WebhookReceiverStarter,
) -> None:
    secret, other = generate_standard_secret(), generate_standard_secret()
    receiver = await start_webhook_receiver(statuses=[503, 200], secret=secret)
    stale = int(time.time()) - 600
    async with httpx.AsyncClient() as client:
        signed = sign_standard(secret, BODY, msg_id="msg_1")
        answers = [
            await client.post(receiver.url, content=BODY, headers=signed),
            await client.post(receiver.url, content=BODY + b" ", headers=signed),
            await client.post(receiver.url, content=BODY, headers=sign_standard(other, BODY, msg_id="msg_1")),
            await client.post(receiver.url, content=BODY, headers=sign_standard(secret, BODY, timestamp=stale)),
            # While a secret rotates, the old and the new one both sign: one signature that holds is enough.
            await client.post(receiver.url, content=BODY, headers=sign_standard([other, secret], BODY, msg_id="msg_1")),
        ]
    assert [answer.status_code for answer in answers] == [503, 401, 401, 401, 200]
    assert [request.verified for request in receiver.received] == [True, False, False, False, True]
    assert receiver.delivered_ids() == ["msg_1"]


async def test_a_receiver_on_a_port_chosen_beforehand_is_refused_until_it_starts(
    start_webhook_receiver: WebhookReceiverStarter,
) -> None:
    port = free_port()
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(f"http://127.0.0.1:{port}/hook", content=BODY)
        receiver = await start_webhook_receiver(port=port)
        answer = await client.post(receiver.url, content=BODY, headers={"webhook-id": "msg_2"})
    assert (receiver.port, answer.status_code, receiver.delivered_ids()) == (port, 200, ["msg_2"])


async def test_a_held_request_whose_sender_went_away_counts_as_not_answered(
    start_webhook_receiver: WebhookReceiverStarter,
) -> None:
    hold = asyncio.Event()
    receiver = await start_webhook_receiver(hold=hold)
    async with httpx.AsyncClient() as client:
        sending = asyncio.create_task(client.post(receiver.url, content=BODY, headers={"webhook-id": "msg_3"}))
        await receiver.wait_for_requests(1)
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
    hold.set()
    await wait_until(lambda: receiver.received[0].finished, what="the receiver through with the request")
    assert [request.status for request in receiver.received] == [None]
    assert receiver.delivered_ids() == []


def _send(port: int, recipients: list[str]) -> dict[str, tuple[int, bytes]]:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@example.com", ", ".join(recipients), "Hello"
    message.set_content("plain words")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        return smtp.send_message(message)


async def test_the_mail_server_catches_mail_and_refuses_bouncing_mailboxes(mail_server: MailServer) -> None:
    mail_server.start()
    refused = await asyncio.to_thread(_send, mail_server.port, ["ana@example.com", "bounce-bo@example.com"])
    assert list(refused) == ["bounce-bo@example.com"]
    [caught] = mail_server.to("ana@example.com")
    assert caught.message["Subject"] == "Hello" and caught.part("plain").strip() == "plain words"


async def test_own_redis_tells_when_the_consumer_groups_are_there(own_redis: str) -> None:
    redis = Redis.from_url(own_redis)
    try:
        await redis.xgroup_create("events:a", "first", id="$", mkstream=True)
        with pytest.raises(WaitTimeoutError, match="events:a: second"):
            await wait_for_consumer_groups(redis, {"events:a": ["first", "second"]}, within=0.2)
        await redis.xgroup_create("events:a", "second", id="$")
        await wait_for_consumer_groups(redis, {"events:a": ["first", "second"]}, within=1)
        with pytest.raises(WaitTimeoutError, match="events:none: first"):
            await wait_for_consumer_groups(redis, {"events:none": ["first"]}, within=0.2)
    finally:
        await redis.aclose()
