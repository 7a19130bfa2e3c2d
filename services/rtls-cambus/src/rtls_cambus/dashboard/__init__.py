"""The dashboard's summary: people on site, devices online and offline, open incidents, in a few statements."""
