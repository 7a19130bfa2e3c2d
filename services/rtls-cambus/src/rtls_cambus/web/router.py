"""The service's web page: the live map. An HTML shell whose script reads the REST API and the live feed with the
user's own credentials, so the API decides what it shows; viewers and up."""

from __future__ import annotations

from pathlib import Path

from mirante.web.pages import PageKit

pages = PageKit(Path(__file__).resolve().parent, title="RTLS")
router = pages.router

pages.add_page("/", "map", "The live map: a floor plan with its gateways, zones and the people on it.")
