"""The service's web pages: HTML shells whose scripts read the REST API with the user's bearer token.

Serving, security headers, caching, the shared scripts and the sign-in page come from `mirante.web.pages`;
this package holds only the pages' templates and their own scripts and styles.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

from fastapi import Path as PathParam
from fastapi.responses import Response

from mirante.web.pages import PageKit

pages = PageKit(Path(__file__).resolve().parent, title="Recordings")
router = pages.router

pages.add_page("/", "recordings", "The recordings, newest first, with filters (any signed-in user).")
pages.add_page("/statistics", "statistics", "Upload volume per day, failures and uploads in progress (operators).")


@router.get("/recordings/{recording_id}")
async def player_page(recording_id: Annotated[uuid.UUID, PathParam()]) -> Response:
    """One recording: the video, streamed with Range through a signed URL, beside its metadata."""
    return pages.page_response("player")
