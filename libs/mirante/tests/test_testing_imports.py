"""The import-graph check finds loops between a package's top-level parts, in any import form."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mirante.testing.imports import assert_no_import_cycles, find_cycle, import_graph


def _write(root: Path, files: dict[str, str]) -> None:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)


@pytest.fixture
def make_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(name: str, files: dict[str, str]) -> str:
        _write(tmp_path / name, {"__init__.py": "", **files})
        return name

    yield make
    for module in [name for name in sys.modules if name.startswith("graphpkg")]:
        del sys.modules[module]


def test_the_graph_joins_folders_and_modules(make_package) -> None:  # type: ignore[no-untyped-def]
    package = make_package(
        "graphpkg_ok",
        {
            "config.py": "from graphpkg_ok.options import Secret\n",
            "options.py": "import json\n",
            "feature/__init__.py": "",
            "feature/router.py": "from graphpkg_ok import config\nfrom . import service\n",
            "feature/service.py": "def later():\n    from graphpkg_ok.store.rows import Row\n",
            "store/rows.py": "from graphpkg_ok.options import Secret\n",
        },
    )
    graph = import_graph(package)
    assert graph["config"] == {"options"}
    assert graph["feature"] == {"config", "store"}
    assert graph["store"] == {"options"}
    assert find_cycle(graph) is None
    assert_no_import_cycles(package)


def test_a_loop_through_a_relative_import_is_reported(make_package) -> None:  # type: ignore[no-untyped-def]
    package = make_package(
        "graphpkg_loop",
        {
            "config.py": "from graphpkg_loop.auth.options import Secret\n",
            "auth/__init__.py": "",
            "auth/options.py": "from ..config import Settings\n",
        },
    )
    assert find_cycle(import_graph(package)) == ["auth", "config", "auth"]
    with pytest.raises(AssertionError, match="auth -> config -> auth"):
        assert_no_import_cycles(package)
