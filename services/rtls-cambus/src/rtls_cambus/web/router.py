"""The service's web pages: the live map and the alerts inbox. HTML shells whose scripts read the REST API (and the
live feed) with the user's own credentials, so the API decides what they show; viewers and up."""

from __future__ import annotations

from pathlib import Path

from mirante.web.pages import PageKit

pages = PageKit(Path(__file__).resolve().parent, title="RTLS")
router = pages.router

pages.add_page("/", "map", "The live map: a floor plan with its gateways, zones and the people on it.")
pages.add_page("/alerts", "alerts", "The alerts inbox: open alerts to acknowledge and resolve.")
