"""The `recording-upload` command against the fake recording server (output not on a terminal: plain lines)."""

from __future__ import annotations

import io
import json
import os
import time

from recording_client.cli import main


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), stdout=out)
    return code, out.getvalue()


def test_upload_queue_status_and_list(fake_server, recording, tmp_path) -> None:
    video, _ = recording
    common = ["--base-url", fake_server.base_url, "--token", fake_server.token, "--state", str(tmp_path / "s.json")]
    assert run(*common, "test") == (0, f"{fake_server.base_url}: OK\n")

    code, output = run(*common, "upload", str(video))  # the metadata file is found beside the video
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0] == f"started   {video.name}"
    assert [line for line in lines if line.startswith("progress")][-1] == f"progress  {video.name} 100%"
    assert lines[-2].startswith(f"completed {video.name} -> rec_")
    assert lines[-1] == "queue: 0 queued, 0 active, 1 completed, 0 failed"

    code, output = run("--state", str(tmp_path / "s.json"), "queue")
    assert code == 0 and "completed" in output and video.name in output
    task_id = output.splitlines()[1].split()[0]
    code, output = run(*common, "status", task_id)
    assert code == 0 and json.loads(output)["task"]["status"] == "completed"

    code, output = run(*common, "list", "--wats-user", "jefferson.silva")
    assert code == 0 and json.loads(output)["count"] == 1


def test_refused_token_and_missing_server(fake_server, recording, tmp_path) -> None:
    video, metadata = recording
    code, output = run(
        "--base-url", fake_server.base_url, "--token", "wrong", "--state", str(tmp_path / "s.json"),
        "upload", str(video), "--metadata", str(metadata),
    )  # fmt: skip
    assert code == 1 and f"failed    {video.name}: 401 unauthorized" in output
    assert run("upload", str(video))[0] == 2  # no server configured


def test_watch_once_reads_config_json(fake_server, recording, tmp_path) -> None:
    video, _ = recording
    old = time.time() - 3600
    os.utime(video, (old, old))
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "recording": {"output_dir": str(video.parent)},
                "api": {"base_url": fake_server.base_url, "api_token": fake_server.token, "max_file_age_days": 1},
            }
        )
    )
    code, output = run("--config", str(config), "watch", "--once")
    assert code == 0, output
    assert output.splitlines()[-1] == "queue: 0 queued, 0 active, 1 completed, 0 failed"
    assert (tmp_path / "upload-state.json").exists()
