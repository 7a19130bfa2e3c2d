"""Startup objects leave the garbage collector's view while an app runs, and come back when it stops."""

from __future__ import annotations

import gc

from mirante.runtime import freeze_startup_objects, thaw_startup_objects
from mirante.settings import InfraSettings
from mirante.testing.apps import library_app


def test_freezing_moves_live_objects_out_of_the_collectors_view_and_thawing_returns_them() -> None:
    thaw_startup_objects()
    freeze_startup_objects()
    try:
        assert gc.get_freeze_count() > 0
    finally:
        thaw_startup_objects()
    assert gc.get_freeze_count() == 0


async def test_an_app_freezes_its_startup_objects_while_it_runs(infra_settings: InfraSettings) -> None:
    thaw_startup_objects()
    app = library_app(infra_settings)
    async with app.router.lifespan_context(app):
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
