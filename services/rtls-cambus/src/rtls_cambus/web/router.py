"""The service's web pages: the live map, the alerts inbox, the dashboard, the incident board and an incident's
page, and the webhook subscriptions with their delivery log. HTML shells whose scripts read the REST API (and the
live feed) with the user's own credentials, so the API decides what each shows: viewers and up read, operators
also work alerts and incidents, and the webhook page is for admins of the whole suite."""

from __future__ import annotations

from pathlib import Path

from fastapi.responses import Response

from mirante.web.pages import PageKit
from rtls_cambus.incidents.schemas import IncidentId

pages = PageKit(Path(__file__).resolve().parent, title="RTLS")
router = pages.router

pages.add_page("/", "map", "The live map: a floor plan with its gateways, zones and the people on it.")
pages.add_page("/alerts", "alerts", "The alerts inbox: open alerts to acknowledge and resolve.")
pages.add_page("/dashboard", "dashboard", "Who is on site by building and floor, devices online, open incidents.")
pages.add_page("/incidents", "incidents", "The incident board: a column per status, with filters.")
pages.add_page("/webhooks", "webhooks", "Webhook subscriptions and each one's delivery log, with redelivery.")


@router.get("/incidents/{incident_id}")
async def incident_page(incident_id: IncidentId) -> Response:
    """One incident: its fields and status flow, history, thread and attachments."""
    return pages.page_response("incident")
