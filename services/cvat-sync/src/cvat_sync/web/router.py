"""The service's web pages: HTML shells whose scripts read the REST API with the user's bearer token.

Serving, security headers, caching, the shared scripts and the sign-in page come from `mirante.web.pages`;
this package holds only the pages' templates and their own scripts and styles.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.responses import Response

from mirante.types import Id64
from mirante.web.pages import PageKit

pages = PageKit(Path(__file__).resolve().parent, title="CVAT sync")
router = pages.router

pages.add_page("/", "jobs", "The job list with stat cards, filters, CSV export and the sync button.")
pages.add_page("/sync-runs", "sync-runs", "The sync runs, newest first (operators).")
pages.add_page("/webhook-logs", "webhook-logs", "The webhook audit log (the API answers admins only).")


@router.get("/jobs/{job_id}")
async def job_page(job_id: Id64) -> Response:
    """One job: fields, annotation counts, history, raw payload and its link in CVAT."""
    return pages.page_response("job")
