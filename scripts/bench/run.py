"""Run the benchmarks (all, or those named) against real servers and update `docs/benchmarks.md`.

Servers come from `MIRANTE_DATABASE_URL`, `MIRANTE_REDIS_URL` and `MIRANTE_MQTT_URL` when set, otherwise an
embedded stack is started for the run (data in a temporary folder).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

# Run as a script, so this folder is on sys.path and its sibling modules import by name.
from report import Report, write_sections

from mirante.devstack import EmbeddedStack, StackUrls

BENCHMARKS = [
    "bus",
    "mqtt",
    "cvat_sync",
    "cvat_webhooks",
    "telemetry_mqtt",
    "telemetry_http",
    "telemetry_queries",
    "recording_uploads",
    "vision_heartbeats",
    "vision_dispatch",
    "rtls_ingest",
    "alert_evaluations",
    "alert_latency",
    "webhook_deliveries",
]

Benchmark = Callable[[StackUrls], Awaitable[Report]]


def load(name: str) -> Benchmark:
    module = importlib.import_module(f"bench_{name}")
    benchmark: Benchmark = module.run
    return benchmark


async def run_all(names: list[str], urls: StackUrls) -> list[Report]:
    reports = []
    for name in names:
        print(f"running {name} ...", flush=True)
        report = await load(name)(urls)
        print(report.markdown("make bench"), flush=True)
        reports.append(report)
    return reports


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes, to check that benchmarks run (those that read BENCH_QUICK); docs/benchmarks.md unchanged",
    )
    args = parser.parse_args()
    if args.quick:
        os.environ["BENCH_QUICK"] = "1"
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    names = args.names or BENCHMARKS
    command = "make bench" if not args.names else f".venv/bin/python scripts/bench/run.py {' '.join(names)}"
    with tempfile.TemporaryDirectory(prefix="mirante-bench-") as folder, EmbeddedStack(Path(folder)) as urls:
        reports = asyncio.run(run_all(names, urls))
    if args.quick:
        print("quick run: docs/benchmarks.md left as it was")
        return 0
    write_sections([(report, command) for report in reports])
    print(f"updated {len(reports)} section(s) of docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
