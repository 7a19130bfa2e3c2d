"""The service's web pages: HTML shells whose scripts read the REST API with the user's bearer token and refresh
it every few seconds while the tab is visible.

Serving, security headers, caching, the shared scripts and the sign-in page come from `mirante.web.pages`;
this package holds only the pages' templates and their own scripts and styles. The pages are for operators and
up (they say so to a viewer); the API they read stays open to viewers.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.responses import Response

from mirante.web.pages import PageKit
from vision_orchestrator.identifiers import InspectionIdPath

pages = PageKit(Path(__file__).resolve().parent, title="Vision orchestrator")
router = pages.router

pages.add_page("/", "dashboard", "Totals of machines and inspections, the system's health and recent performance.")
pages.add_page("/machines", "machines", "The machine board: status, load, last heartbeat and maintenance.")
pages.add_page("/queue", "queue", "Pending inspections in queue order, with estimated waits when the server has them.")


@router.get("/inspections/{inspection_id}")
async def inspection_page(inspection_id: InspectionIdPath) -> Response:
    """One inspection: its fields, its pipeline drawn as a graph, its status history and results."""
    return pages.page_response("inspection")
