"""What a benchmark reports, and how reports become `docs/benchmarks.md` sections."""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"


@dataclass
class Report:
    """One benchmark's figures: `rows` of (measure, value) and the headline ratio to its same-run baseline."""

    name: str
    title: str
    rows: list[tuple[str, str]]
    ratio: float
    ratio_meaning: str
    target: str
    notes: list[str] = field(default_factory=list)

    def markdown(self, command: str) -> str:
        lines = [
            f"<!-- bench:{self.name} -->",
            f"## {self.title}",
            "",
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()} with `{command}`.",
            "",
            "| measure | value |",
            "|---|---|",
            *(f"| {measure} | {value} |" for measure, value in self.rows),
            f"| **ratio: {self.ratio_meaning}** | **{self.ratio:.2f}** (target {self.target}) |",
            "",
            *(f"- {note}" for note in self.notes),
            f"<!-- /bench:{self.name} -->",
        ]
        return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}/s ({count:,} in {seconds:.2f} s)"


HEADER = """# Benchmarks

Produced by `make bench` (`scripts/bench/run.py`); each section is rewritten when its benchmark runs. Every
figure is compared with a baseline measured in the same run on the same servers, so the ratio means something
even on a busy or slow machine. Run one with `.venv/bin/python scripts/bench/run.py NAME`; `--quick` runs small
sizes of the benchmarks that read `BENCH_QUICK` (the vision-orchestrator ones) to check that they work, and
leaves this file as it is.
"""


def write_sections(reports: list[tuple[Report, str]], doc: Path = DOC) -> None:
    """Replace (or append) the section of each report in `doc`, keeping the others."""
    text = doc.read_text() if doc.exists() else HEADER
    for report, command in reports:
        section = report.markdown(command)
        pattern = re.compile(rf"<!-- bench:{report.name} -->.*?<!-- /bench:{report.name} -->", re.DOTALL)
        match = pattern.search(text)
        if match:
            text = text[: match.start()] + section + text[match.end() :]
        else:
            text = text.rstrip() + "\n\n" + section + "\n"
    doc.write_text(text)


def load_note(at_start: float) -> str:
    """What else the machine was doing: its 1-minute load average at the start and now, against its cores."""
    at_end, cores = os.getloadavg()[0], os.cpu_count() or 1
    busy = (
        "other processes shared the cores with the benchmark, so both sides of each ratio ran slower than on an "
        "idle machine"
        if max(at_start, at_end) > cores / 2
        else "the machine was otherwise quiet"
    )
    return (
        f"Load average of the machine (1 min) at the start / end: {at_start:.1f} / {at_end:.1f} on {cores} cores: "
        f"{busy}."
    )
