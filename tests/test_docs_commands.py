"""The commands the README and the docs show work as written on a fresh machine after `make run`.

There uv is not on the PATH (the Makefile runs it as `python3 -m uv`) and nothing is activated, so every
command of the suite is written as `.venv/bin/<command>`; `uv run ...` and bare command names would fail with
"command not found". Each documented invocation is also checked against the command's own `--help`, so an
option the docs show and the command refuses (as `apikey create --tenant` once was) fails here.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PREFIX = ".venv/bin/"
# Pages whose commands a developer types on their machine; deploy/README.md shows commands run inside the image.
LOCAL_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
UV_RUN_PLACES = [*LOCAL_PAGES, ROOT / "deploy" / "README.md", *sorted((ROOT / "scripts").rglob("*.py"))]
SHELL_OPERATORS = {"|", "||", "&&", ";", ")"}
HELP_TIMEOUT_SECONDS = 60


def workspace_commands() -> set[str]:
    """Console scripts of the library and the services, plus the venv's tools the docs use."""
    names = {"python", "pytest", "alembic", "ruff", "mypy", "uv", "amqtt_pub", "amqtt_sub", "amqtt"}
    for pyproject in [ROOT / "libs" / "mirante" / "pyproject.toml", *ROOT.glob("services/*/pyproject.toml")]:
        names |= set(tomllib.loads(pyproject.read_text())["project"].get("scripts", {}))
    return names


@dataclass(frozen=True)
class Shown:
    """One command as a page shows it: a line of a shell block (continuations joined) or an inline code span."""

    page: str
    line: int
    text: str
    inline: bool

    def tokens(self) -> list[str]:
        # Markdown tables escape `|` as `\|`; shell comments after a command are not part of it.
        text = self.text.replace("\\|", "|")
        try:
            return shlex.split(text, comments=True)
        except ValueError:  # a span that is not shell, such as a lone backslash
            return text.split()


def shown_commands(page: Path) -> Iterator[Shown]:
    """Shell block lines and inline code spans of a Markdown page."""
    lines = page.read_text().splitlines()
    fence: str | None = None
    pending = ""
    start = 0
    for number, line in enumerate(lines, start=1):
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
            continue
        if fence is not None:
            if fence in ("sh", "bash", "shell", "console"):
                if not pending:
                    start = number
                pending += line.rstrip("\\") + " " if line.endswith("\\") else line
                if not line.endswith("\\"):
                    yield Shown(page.name, start, pending, inline=False)
                    pending = ""
            continue
        for span in re.findall(r"(?<!`)`([^`]+)`(?!`)", line):
            yield Shown(page.name, number, span, inline=True)


def invocations(shown: Shown) -> Iterator[list[str]]:
    """The `.venv/bin/...` commands in a shown command, each with its arguments up to a shell operator."""
    tokens = shown.tokens()
    for index, token in enumerate(tokens):
        sourced = index > 0 and tokens[index - 1] in ("source", ".")
        if token.startswith(PREFIX) and token != PREFIX and not sourced:
            arguments: list[str] = []
            for argument in tokens[index + 1 :]:
                if argument in SHELL_OPERATORS:
                    break
                arguments.append(argument)
            yield [token.removeprefix(PREFIX), *arguments]


def bare_commands(shown: Shown, commands: set[str]) -> list[str]:
    """Suite commands a shown command runs without `.venv/bin/` (which a fresh shell would not find)."""
    tokens = shown.tokens()
    if shown.inline:
        # `cvat-sync sync` in a sentence names a command; with arguments it is one to type.
        return [tokens[0]] if tokens and tokens[0] in commands and len(tokens) > 2 else []
    found = []
    expect_command = True
    for token in tokens:
        if expect_command and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", token):
            continue  # an environment assignment before the command
        if expect_command and token.removeprefix("$(") in commands:
            found.append(token.removeprefix("$("))
        expect_command = token in SHELL_OPERATORS or token.endswith("$(")
    return found


def all_shown() -> list[Shown]:
    return [shown for page in LOCAL_PAGES for shown in shown_commands(page)]


@cache
def help_text(command: tuple[str, ...]) -> str:
    """`--help` of a command (with its subcommands), run from the repository root as the docs' commands are."""
    if command[0] in in_process_commands():
        return in_process_help(command)
    result = subprocess.run(
        [str(venv_bin() / command[0]), *command[1:], "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HELP_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, (command, result.stderr)
    return result.stdout


@cache
def in_process_commands() -> set[str]:
    """Console scripts whose `main(argv)` is argparse: asked in this process, as starting each one would cost
    seconds of imports that the test run has already paid for."""
    return (workspace_commands() - {"python", "pytest", "ruff", "mypy", "uv"}) - {
        "amqtt",
        "amqtt_pub",
        "amqtt_sub",
    }


def in_process_help(command: tuple[str, ...]) -> str:
    (entry_point,) = entry_points(group="console_scripts", name=command[0])
    output = io.StringIO()
    with contextlib.redirect_stdout(output), pytest.raises(SystemExit) as exited:
        entry_point.load()([*command[1:], "--help"])
    assert exited.value.code in (0, None), (command, exited.value.code)
    return output.getvalue()


def venv_bin() -> Path:
    here = ROOT / ".venv" / "bin"
    return here if here.is_dir() else Path(sys.executable).parent


def subcommand_path(invocation: list[str]) -> tuple[str, ...]:
    """The command and the subcommands of an invocation, found by following each `--help`'s choices."""
    path = [invocation[0]]
    rest = invocation[1:]
    if invocation[0] == "python":
        if not rest or not rest[0].endswith(".py"):
            return tuple(path)
        path.append(rest.pop(0))
    for word in rest:
        choices = re.search(r"\{([\w,-]+)\}", help_text(tuple(path)))
        if choices is None or word not in choices.group(1).split(","):
            break
        path.append(word)
    return tuple(path)


def options(invocation: list[str]) -> set[str]:
    """The options an invocation passes (optional ones shown as `[--name VALUE]` included)."""
    found = set()
    for token in invocation[1:]:
        option = token.strip("[]").split("=", 1)[0]
        if re.fullmatch(r"--?[A-Za-z][\w-]*", option):
            found.add(option)
    return found


def test_no_page_or_script_tells_to_use_uv_run() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in UV_RUN_PLACES
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"\buv run\b", line)
    ]
    assert offenders == [], "uv is not on a fresh machine's PATH; write .venv/bin/<command>"


def test_suite_commands_are_shown_through_the_venv() -> None:
    commands = workspace_commands()
    offenders = [
        f"{shown.page}:{shown.line}: {shown.text} ({', '.join(bare)})"
        for shown in all_shown()
        if (bare := bare_commands(shown, commands))
    ]
    assert offenders == [], "write these commands as .venv/bin/<command>, which works without activating the venv"


def test_the_pages_show_commands_through_the_venv() -> None:
    # The checks above would pass on pages that show no command at all.
    assert any(list(invocations(shown)) for shown in all_shown() if shown.page == "README.md")


@pytest.mark.slow
def test_every_shown_command_exists_and_accepts_the_options_shown() -> None:
    shown_invocations = [(shown, invocation) for shown in all_shown() for invocation in invocations(shown)]
    for shown, invocation in shown_invocations:
        assert (venv_bin() / invocation[0]).exists(), f"{shown.page}:{shown.line}: no {PREFIX}{invocation[0]}"
    paths = [subcommand_path(invocation) for _shown, invocation in shown_invocations]
    texts = [help_text(path) for path in paths]
    refused = [
        f"{shown.page}:{shown.line}: {' '.join(path)} has no {option}"
        for (shown, invocation), path, text in zip(shown_invocations, paths, texts, strict=True)
        for option in sorted(options(invocation))
        if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text)
    ]
    assert refused == []
