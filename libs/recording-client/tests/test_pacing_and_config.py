"""Backoff, the upload window, the token bucket and config.json, without a server."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from recording_client import ApiConfig, ConfigError, TokenBucket, UploadWindow
from recording_client.backoff import retry_after_seconds, retry_delay
from recording_client.errors import RETRIABLE_STATUSES


def test_full_jitter_under_a_doubling_ceiling_capped_at_60() -> None:
    rng = random.Random(3)
    for retry, ceiling in [(0, 1), (1, 2), (3, 8), (5, 32), (6, 60), (40, 60), (10_000, 60)]:
        delays = [retry_delay(retry, rng=rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # spread over the whole window, not bunched
    assert retry_delay(0, retry_after=30, rng=rng) >= 30


def test_retry_after_values() -> None:
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("12") == 12
    assert retry_after_seconds("Mon, 02 Mar 2026 12:01:00 GMT", now=now) == 60
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    assert retry_after_seconds("-5") == 0 and retry_after_seconds("99999999") == 600


def test_retriable_statuses() -> None:
    assert frozenset({408, 429, 500, 502, 503, 504}) == RETRIABLE_STATUSES


def test_window_past_midnight_and_weekends() -> None:
    window = UploadWindow.from_config({"start": "19:00", "end": "07:00", "all_day": ["Saturday", "sun"]})
    monday = datetime(2026, 3, 2, tzinfo=UTC)
    assert window.is_open(monday.replace(hour=6, minute=59)) and not window.is_open(monday.replace(hour=7))
    assert window.is_open(monday.replace(hour=19)) and not window.is_open(monday.replace(hour=18, minute=59))
    assert window.seconds_until_open(monday.replace(hour=12)) == 7 * 3600
    assert window.seconds_until_open(monday.replace(hour=20)) == 0
    friday_noon = monday + timedelta(days=4, hours=12)
    assert window.seconds_until_open(friday_noon) == 7 * 3600
    assert window.is_open(friday_noon + timedelta(days=1))  # Saturday noon
    business_hours = UploadWindow.from_config({"start": "08:00", "end": "18:00"})
    assert business_hours.seconds_until_open(monday.replace(hour=18)) == 14 * 3600
    with pytest.raises(ValueError, match="HH:MM"):
        UploadWindow.from_config({"start": "7pm", "end": "07:00"})


class StepClock:
    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds

    def now(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC)


async def test_token_bucket_starts_empty_and_refills_up_to_its_capacity() -> None:
    clock = StepClock()
    bucket = TokenBucket(1000, capacity=500, clock=clock)
    await bucket.acquire(250)  # a fresh process gets no burst
    assert clock.slept == [0.25]
    clock.t += 100  # idle: refills to the capacity only
    await bucket.acquire(500)
    assert clock.slept == [0.25]
    await bucket.acquire(2000)  # larger than the bucket: the whole debt is slept off
    assert clock.slept == [0.25, 2.0]


SEED_CONFIG = {
    "recording": {"enabled": True, "output_dir": "recordings"},
    "api": {
        "enabled": True,
        "base_url": "https://storage.company.com/api/",
        "api_token": "your_secure_api_token_here",
        "auto_upload": True,
        "upload_timeout": 60,
        "max_retries": 3,
        "max_concurrent_uploads": 2,
        "delete_after_upload": False,
        "upload_older_recordings": True,
        "max_file_age_days": 30,
    },
}


def test_seed_config_json(tmp_path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(SEED_CONFIG))
    config = ApiConfig.load(path)
    assert config.base_url == "https://storage.company.com/api"
    assert (config.max_retries, config.max_concurrent_uploads, config.max_file_age_days) == (3, 2, 30)
    assert config.recordings_dir == tmp_path / "recordings"
    assert config.state_file == tmp_path / "upload-state.json"
    assert config.bandwidth_limit_bytes is None and config.upload_window is None


def test_client_keys_and_bad_values(tmp_path) -> None:
    config = ApiConfig.from_dict(
        {"bandwidth_limit_mbps": 8, "upload_window": {"start": "19:00", "end": "07:00"}, "state_file": "s.json"},
        base_dir=tmp_path,
    )
    assert config.bandwidth_limit_bytes == 1_000_000
    assert config.upload_window is not None and config.state_file == tmp_path / "s.json"
    for bad, message in [
        ({"max_retries": "3"}, "max_retries must be int"),
        ({"delete_after_upload": 1}, "delete_after_upload must be bool"),
        ({"max_concurrent_uploads": True}, "max_concurrent_uploads must be int"),
        ({"max_concurrent_uploads": 0}, "at least 1"),
        ({"upload_window": {"start": "19:00"}}, "upload_window"),
        ({"bandwidth_limit_mbps": -1}, "positive"),
    ]:
        with pytest.raises(ConfigError, match=message):
            ApiConfig.from_dict(bad)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ConfigError, match="cannot read"):
        ApiConfig.load(broken)
