"""Webhook signatures: known vectors computed with the stdlib, published vectors, and every bad path."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
from collections.abc import Callable

import pytest
from starlette.datastructures import Headers

from mirante.webhooks import (
    CHATWOOT_DELIVERY_HEADER,
    CHATWOOT_SIGNATURE_HEADER,
    CHATWOOT_TIMESTAMP_HEADER,
    MAX_HEADER_LENGTH,
    InvalidSignatureError,
    MalformedSignatureError,
    MissingSignatureError,
    SignatureError,
    StaleTimestampError,
    WebhookConfigurationError,
    generate_standard_secret,
    sign_chatwoot,
    sign_sha256_hex,
    sign_standard,
    verify_chatwoot,
    verify_sha256_hex,
    verify_standard,
)

TEXT_SECRET = "cvat-secret-ü-0123456789"
BODY = b'{"event": "update:job", "job": {"id": 42, "state": "completed"}}'
TIMESTAMP = 1_700_000_000

# Published example of the Standard Webhooks reference libraries.
PUBLISHED_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PUBLISHED_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
PUBLISHED_TIMESTAMP = 1614265330
PUBLISHED_BODY = b'{"test": 2432232314}'
PUBLISHED_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

STANDARD_KEY = bytes(range(32))
STANDARD_SECRET = "whsec_" + base64.b64encode(STANDARD_KEY).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another key of exactly 32 bytes!").decode()


def _hex_hmac(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _b64_hmac(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def _flip_one_byte(data: bytes) -> bytes:
    return data[:10] + bytes([data[10] ^ 0x01]) + data[11:]


def _raises_only_signature_errors(check: Callable[..., None], *args: object, **kwargs: object) -> None:
    try:
        check(*args, **kwargs)
    except SignatureError:
        return
    pytest.fail("verification accepted junk input")


# --- GitHub / CVAT: X-Signature-256: sha256=<hex> over the body only ---


def test_sha256_hex_matches_an_independent_stdlib_computation() -> None:
    expected = "sha256=" + _hex_hmac(TEXT_SECRET.encode("utf-8"), BODY)

    assert sign_sha256_hex(TEXT_SECRET, BODY) == expected
    assert sign_sha256_hex(TEXT_SECRET.encode("utf-8"), BODY) == expected
    verify_sha256_hex(TEXT_SECRET, BODY, expected)
    verify_sha256_hex(TEXT_SECRET, BODY, expected.upper().replace("SHA256=", "sha256="))


def test_sha256_hex_published_github_vector() -> None:
    # docs.github.com "Validating webhook deliveries", section "Testing the webhook payload validation".
    published = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

    assert sign_sha256_hex("It's a Secret to Everybody", b"Hello, World!") == published
    verify_sha256_hex("It's a Secret to Everybody", b"Hello, World!", published)


def test_sha256_hex_matches_the_cvat_docs_empty_body_example() -> None:
    # The CVAT docs print this value for secret "mykey" and an empty body, abbreviated as e1b24265…745f.
    signature = sign_sha256_hex("mykey", b"")

    assert signature.startswith("sha256=e1b24265")
    assert signature.endswith("745f")


@pytest.mark.parametrize("header_value", [None, "", "   "])
def test_sha256_hex_missing_header(header_value: str | None) -> None:
    with pytest.raises(MissingSignatureError, match="X-Signature-256 header is missing"):
        verify_sha256_hex(TEXT_SECRET, BODY, header_value)


def test_sha256_hex_malformed_headers() -> None:
    good = sign_sha256_hex(TEXT_SECRET, BODY)
    digits = good.removeprefix("sha256=")
    cases = {
        "sha1=" + digits: "must start with 'sha256='",
        digits: "must start with 'sha256='",
        "v1," + digits: "must start with 'sha256='",
        "sha256=" + "zz" + digits[2:]: "non-hexadecimal",
        "sha256=" + digits[:-2] + "é1": "non-hexadecimal",
        "sha256=" + digits[:-1]: "63 hexadecimal digits",
        "sha256=" + digits + "00": "66 hexadecimal digits",
        "sha256=": "0 hexadecimal digits",
        "sha256=" + "a" * (MAX_HEADER_LENGTH * 4): "at most 4096",
    }
    for header_value, reason in cases.items():
        with pytest.raises(MalformedSignatureError, match=reason):
            verify_sha256_hex(TEXT_SECRET, BODY, header_value)


def test_sha256_hex_rejects_tampered_body_wrong_secret_and_reserialised_json() -> None:
    signature = sign_sha256_hex(TEXT_SECRET, BODY)
    compact = json.dumps(json.loads(BODY), separators=(",", ":")).encode()

    for body, secret in [
        (_flip_one_byte(BODY), TEXT_SECRET),
        (BODY, TEXT_SECRET + "x"),
        (compact, TEXT_SECRET),
    ]:
        with pytest.raises(InvalidSignatureError) as caught:
            verify_sha256_hex(secret, body, signature)
        assert TEXT_SECRET not in str(caught.value)


def test_sha256_hex_bad_secret_is_a_configuration_error() -> None:
    for secret in ["", b"", "\ud800", 12345]:
        with pytest.raises(WebhookConfigurationError):
            sign_sha256_hex(secret, BODY)  # type: ignore[arg-type]
        with pytest.raises(WebhookConfigurationError):
            verify_sha256_hex(secret, BODY, "sha256=" + "0" * 64)  # type: ignore[arg-type]


def test_body_must_be_raw_bytes() -> None:
    with pytest.raises(TypeError, match="raw request bytes"):
        sign_sha256_hex(TEXT_SECRET, BODY.decode())  # type: ignore[arg-type]


# --- Chatwoot: sha256=<hex> over "{timestamp}.{body}", 5-minute window ---


def test_chatwoot_matches_an_independent_stdlib_computation() -> None:
    headers = sign_chatwoot(TEXT_SECRET, BODY, timestamp=TIMESTAMP, delivery_id="d-1")

    expected = "sha256=" + _hex_hmac(TEXT_SECRET.encode(), f"{TIMESTAMP}.".encode() + BODY)
    assert headers == {
        CHATWOOT_SIGNATURE_HEADER: expected,
        CHATWOOT_TIMESTAMP_HEADER: str(TIMESTAMP),
        CHATWOOT_DELIVERY_HEADER: "d-1",
    }
    verify_chatwoot(TEXT_SECRET, headers, BODY, now=TIMESTAMP + 10)
    lowercase = {name.lower(): value for name, value in headers.items()}
    verify_chatwoot(TEXT_SECRET, lowercase, BODY, now=TIMESTAMP + 10)
    verify_chatwoot(TEXT_SECRET, Headers(headers=headers), BODY, now=TIMESTAMP + 10)


def test_chatwoot_defaults_to_now_and_a_fresh_delivery_id() -> None:
    first = sign_chatwoot(TEXT_SECRET, BODY)
    second = sign_chatwoot(TEXT_SECRET, BODY)

    verify_chatwoot(TEXT_SECRET, first, BODY)
    assert first[CHATWOOT_DELIVERY_HEADER] != second[CHATWOOT_DELIVERY_HEADER]


def test_chatwoot_window_is_five_minutes_both_ways() -> None:
    headers = sign_chatwoot(TEXT_SECRET, BODY, timestamp=TIMESTAMP)

    verify_chatwoot(TEXT_SECRET, headers, BODY, now=TIMESTAMP + 300)
    verify_chatwoot(TEXT_SECRET, headers, BODY, now=TIMESTAMP - 300)
    with pytest.raises(StaleTimestampError, match="301 s in the past"):
        verify_chatwoot(TEXT_SECRET, headers, BODY, now=TIMESTAMP + 301)
    with pytest.raises(StaleTimestampError, match="301 s in the future"):
        verify_chatwoot(TEXT_SECRET, headers, BODY, now=TIMESTAMP - 301)
    verify_chatwoot(TEXT_SECRET, headers, BODY, now=TIMESTAMP + 3000, tolerance=3600)


def test_chatwoot_missing_and_malformed_headers() -> None:
    headers = sign_chatwoot(TEXT_SECRET, BODY, timestamp=TIMESTAMP)
    without_signature = {CHATWOOT_TIMESTAMP_HEADER: str(TIMESTAMP)}
    without_timestamp = {CHATWOOT_SIGNATURE_HEADER: headers[CHATWOOT_SIGNATURE_HEADER]}

    with pytest.raises(MissingSignatureError, match="X-Chatwoot-Signature"):
        verify_chatwoot(TEXT_SECRET, without_signature, BODY, now=TIMESTAMP)
    with pytest.raises(MissingSignatureError, match="X-Chatwoot-Timestamp"):
        verify_chatwoot(TEXT_SECRET, without_timestamp, BODY, now=TIMESTAMP)
    for timestamp in [
        "12.5",
        "abc",
        "-5",
        "+5",
        "1_700_000_000",
        "\u0661\u0667" + "\u0660" * 8,
        "1e9",
        "9" * 16,
    ]:
        with pytest.raises(MalformedSignatureError, match="unix seconds"):
            verify_chatwoot(TEXT_SECRET, {**headers, CHATWOOT_TIMESTAMP_HEADER: timestamp}, BODY, now=TIMESTAMP)
    with pytest.raises(MalformedSignatureError, match="must start with 'sha256='"):
        verify_chatwoot(TEXT_SECRET, {**headers, CHATWOOT_SIGNATURE_HEADER: "v1,abc"}, BODY, now=TIMESTAMP)


def test_chatwoot_signature_binds_the_timestamp_and_the_body() -> None:
    headers = sign_chatwoot(TEXT_SECRET, BODY, timestamp=TIMESTAMP)
    moved = {**headers, CHATWOOT_TIMESTAMP_HEADER: str(TIMESTAMP + 60)}

    for candidate_headers, body, secret in [
        (moved, BODY, TEXT_SECRET),
        (headers, _flip_one_byte(BODY), TEXT_SECRET),
        (headers, BODY, "another secret"),
    ]:
        with pytest.raises(InvalidSignatureError):
            verify_chatwoot(secret, candidate_headers, body, now=TIMESTAMP)


# --- Standard Webhooks ---


def _published_headers(**overrides: str) -> dict[str, str]:
    headers = {
        "webhook-id": PUBLISHED_ID,
        "webhook-timestamp": str(PUBLISHED_TIMESTAMP),
        "webhook-signature": PUBLISHED_SIGNATURE,
    }
    headers.update(overrides)
    return headers


def test_standard_published_vector_verifies_and_signs_identically() -> None:
    verify_standard(PUBLISHED_SECRET, _published_headers(), PUBLISHED_BODY, now=PUBLISHED_TIMESTAMP)

    signed = sign_standard(PUBLISHED_SECRET, PUBLISHED_BODY, msg_id=PUBLISHED_ID, timestamp=PUBLISHED_TIMESTAMP)
    assert signed == _published_headers()


def test_standard_matches_an_independent_stdlib_computation() -> None:
    signed = sign_standard(STANDARD_SECRET, BODY, msg_id="msg_1", timestamp=TIMESTAMP)

    assert signed["webhook-signature"] == "v1," + _b64_hmac(STANDARD_KEY, f"msg_1.{TIMESTAMP}.".encode() + BODY)
    assert sign_standard(STANDARD_KEY, BODY, msg_id="msg_1", timestamp=TIMESTAMP) == signed
    verify_standard(STANDARD_KEY, signed, BODY, now=TIMESTAMP)
    verify_standard([STANDARD_SECRET], signed, BODY, now=TIMESTAMP)


def test_standard_defaults_to_now_and_a_fresh_message_id() -> None:
    first = sign_standard(STANDARD_SECRET, BODY)
    second = sign_standard(STANDARD_SECRET, BODY)

    verify_standard(STANDARD_SECRET, first, BODY)
    assert first["webhook-id"].startswith("msg_")
    assert first["webhook-id"] != second["webhook-id"]


def test_standard_header_lookup_is_case_insensitive() -> None:
    signed = sign_standard(STANDARD_SECRET, BODY, msg_id="msg_1", timestamp=TIMESTAMP)
    mixed_case = {name.title(): value for name, value in signed.items()}
    raw_mixed_case = [(name.title().encode(), value.encode()) for name, value in signed.items()]

    verify_standard(STANDARD_SECRET, mixed_case, BODY, now=TIMESTAMP)
    verify_standard(STANDARD_SECRET, Headers(headers=mixed_case), BODY, now=TIMESTAMP)
    verify_standard(STANDARD_SECRET, Headers(raw=raw_mixed_case), BODY, now=TIMESTAMP)


def test_standard_rotation_with_two_secrets() -> None:
    signed_with_old = sign_standard(OTHER_SECRET, BODY, msg_id="msg_1", timestamp=TIMESTAMP)

    verify_standard([STANDARD_SECRET, OTHER_SECRET], signed_with_old, BODY, now=TIMESTAMP)
    with pytest.raises(InvalidSignatureError):
        verify_standard([STANDARD_SECRET], signed_with_old, BODY, now=TIMESTAMP)


def test_standard_rotation_with_two_signatures_in_one_header() -> None:
    signed = sign_standard([OTHER_SECRET, STANDARD_SECRET], BODY, msg_id="msg_1", timestamp=TIMESTAMP)
    third_secret = generate_standard_secret()

    assert len(signed["webhook-signature"].split(" ")) == 2
    verify_standard(STANDARD_SECRET, signed, BODY, now=TIMESTAMP)
    verify_standard(OTHER_SECRET, signed, BODY, now=TIMESTAMP)
    with pytest.raises(InvalidSignatureError):
        verify_standard(third_secret, signed, BODY, now=TIMESTAMP)


def test_standard_ignores_other_versions_and_broken_entries_next_to_a_good_one() -> None:
    good = sign_standard(STANDARD_SECRET, BODY, msg_id="msg_1", timestamp=TIMESTAMP)
    crowded = f"v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5= v1,!!! v2,abc  {good['webhook-signature']} junk"

    verify_standard(STANDARD_SECRET, {**good, "webhook-signature": crowded}, BODY, now=TIMESTAMP)


def test_standard_timestamp_tolerance_both_ways() -> None:
    headers = _published_headers()

    verify_standard(PUBLISHED_SECRET, headers, PUBLISHED_BODY, now=PUBLISHED_TIMESTAMP + 300)
    verify_standard(PUBLISHED_SECRET, headers, PUBLISHED_BODY, now=PUBLISHED_TIMESTAMP - 300)
    with pytest.raises(StaleTimestampError, match="webhook-timestamp is 301 s in the past"):
        verify_standard(PUBLISHED_SECRET, headers, PUBLISHED_BODY, now=PUBLISHED_TIMESTAMP + 301)
    with pytest.raises(StaleTimestampError, match="webhook-timestamp is 301 s in the future"):
        verify_standard(PUBLISHED_SECRET, headers, PUBLISHED_BODY, now=PUBLISHED_TIMESTAMP - 301)
    with pytest.raises(StaleTimestampError, match="past"):
        verify_standard(PUBLISHED_SECRET, headers, PUBLISHED_BODY)
    with pytest.raises(StaleTimestampError):
        verify_standard(PUBLISHED_SECRET, headers, PUBLISHED_BODY, now=PUBLISHED_TIMESTAMP + 11, tolerance=10)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_standard_missing_header(missing: str) -> None:
    headers = _published_headers()
    del headers[missing]

    with pytest.raises(MissingSignatureError, match=f"the {missing} header is missing"):
        verify_standard(PUBLISHED_SECRET, headers, PUBLISHED_BODY, now=PUBLISHED_TIMESTAMP)
    with pytest.raises(MissingSignatureError, match=missing):
        verify_standard(PUBLISHED_SECRET, {**headers, missing: " "}, PUBLISHED_BODY, now=PUBLISHED_TIMESTAMP)


@pytest.mark.parametrize(
    ("header", "value", "reason"),
    [
        ("webhook-timestamp", "1614265330.5", "unix seconds"),
        ("webhook-timestamp", "2021-02-25T15:02:10Z", "unix seconds"),
        ("webhook-timestamp", "-1614265330", "unix seconds"),
        ("webhook-timestamp", "".join(chr(0xFF10 + int(digit)) for digit in "1614265330"), "unix seconds"),
        ("webhook-id", "msg.with.dots", "without spaces or '.'"),
        ("webhook-id", "msg_ünicode", "without spaces or '.'"),
        ("webhook-id", "m" * 257, "at most 256"),
        ("webhook-signature", "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "no well-formed signature"),
        ("webhook-signature", "sha256=g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "no well-formed"),
        ("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE", "no well-formed"),
        ("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSy", "no well-formed"),
        ("webhook-signature", "v1,not base64 at all!", "no well-formed"),
        ("webhook-signature", "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", "no well-formed"),
        ("webhook-signature", PUBLISHED_SIGNATURE + " " * MAX_HEADER_LENGTH, "at most 4096"),
    ],
)
def test_standard_malformed_header(header: str, value: str, reason: str) -> None:
    with pytest.raises(MalformedSignatureError, match=reason):
        verify_standard(
            PUBLISHED_SECRET, _published_headers(**{header: value}), PUBLISHED_BODY, now=PUBLISHED_TIMESTAMP
        )


def test_standard_rejects_tampering_wrong_secret_and_reserialised_json() -> None:
    reserialised = json.dumps(json.loads(PUBLISHED_BODY), separators=(",", ":")).encode()
    assert reserialised != PUBLISHED_BODY
    cases = [
        (PUBLISHED_SECRET, _published_headers(), PUBLISHED_BODY[:-2] + b"5}"),
        (PUBLISHED_SECRET, _published_headers(), reserialised),
        (PUBLISHED_SECRET, _published_headers(**{"webhook-id": "msg_other"}), PUBLISHED_BODY),
        (PUBLISHED_SECRET, _published_headers(**{"webhook-timestamp": "1614265331"}), PUBLISHED_BODY),
        (STANDARD_SECRET, _published_headers(), PUBLISHED_BODY),
    ]
    for secret, headers, body in cases:
        with pytest.raises(InvalidSignatureError, match="no signature in webhook-signature matches") as caught:
            verify_standard(secret, headers, body, now=PUBLISHED_TIMESTAMP)
        assert "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" not in str(caught.value)


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "whsec_",
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_not*base64",
        "whsec_é",
        b"",
        [],
        [b"ok", ""],
        7,
    ],
)
def test_standard_bad_secret_is_a_configuration_error(secret: object) -> None:
    with pytest.raises(WebhookConfigurationError) as caught:
        verify_standard(secret, _published_headers(), PUBLISHED_BODY, now=PUBLISHED_TIMESTAMP)  # type: ignore[arg-type]
    with pytest.raises(WebhookConfigurationError):
        sign_standard(secret, PUBLISHED_BODY)  # type: ignore[arg-type]
    assert "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" not in str(caught.value)


def test_bad_tolerance_clock_and_outgoing_values_are_configuration_errors() -> None:
    headers = _published_headers()
    for tolerance, now in [(float("nan"), 0.0), (-1.0, 0.0), (300.0, float("nan")), (300.0, float("inf"))]:
        with pytest.raises(WebhookConfigurationError):
            verify_standard(PUBLISHED_SECRET, headers, PUBLISHED_BODY, tolerance=tolerance, now=now)
    for msg_id in ["", "a.b", "has space", "m" * 257]:
        with pytest.raises(WebhookConfigurationError, match="msg_id"):
            sign_standard(STANDARD_SECRET, BODY, msg_id=msg_id)
    for timestamp in [-1, True, 10**16]:
        with pytest.raises(WebhookConfigurationError, match="timestamp"):
            sign_standard(STANDARD_SECRET, BODY, timestamp=timestamp)
    for size in [0, 23, 65]:
        with pytest.raises(WebhookConfigurationError):
            generate_standard_secret(size)


def test_generated_secrets_are_distinct_and_decode_to_the_requested_size() -> None:
    first, second = generate_standard_secret(), generate_standard_secret(48)

    assert first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"), validate=True)) == 32
    assert len(base64.b64decode(second.removeprefix("whsec_"), validate=True)) == 48


# --- Junk input only ever raises SignatureError ---


def _junk_text(rng: random.Random) -> str:
    pieces = [
        "sha256=",
        "v1,",
        "v1a,",
        " ",
        ".",
        ",",
        "=",
        "\x00",
        "\ud800",
        "é",
        "\U0001d518",
        "\u0661",
        "0123456789abcdef",
        "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    ]
    text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
    return text * rng.choice([1, 1, 1, 500])


def test_verification_raises_only_signature_errors_for_junk() -> None:
    rng = random.Random(20240601)
    names = ["webhook-id", "webhook-timestamp", "webhook-signature", CHATWOOT_SIGNATURE_HEADER]
    names.append(CHATWOOT_TIMESTAMP_HEADER)
    for _ in range(600):
        headers: dict[str, str] = {name: _junk_text(rng) for name in names if rng.random() < 0.8}
        body = rng.randbytes(rng.randint(0, 64))
        value = _junk_text(rng)

        _raises_only_signature_errors(verify_sha256_hex, TEXT_SECRET, body, value)
        _raises_only_signature_errors(verify_chatwoot, TEXT_SECRET, headers, body, now=TIMESTAMP)
        _raises_only_signature_errors(verify_standard, STANDARD_SECRET, headers, body, now=TIMESTAMP)

    odd_inputs: list[object] = [12, b"sha256=00", ["sha256="], object()]
    for odd in odd_inputs:
        _raises_only_signature_errors(verify_sha256_hex, TEXT_SECRET, BODY, odd)
        odd_headers = {"webhook-id": odd, "webhook-timestamp": odd, "webhook-signature": odd, 5: "x"}
        _raises_only_signature_errors(verify_standard, STANDARD_SECRET, odd_headers, BODY, now=TIMESTAMP)
    _raises_only_signature_errors(verify_standard, STANDARD_SECRET, None, BODY)
