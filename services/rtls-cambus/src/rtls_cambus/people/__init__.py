"""People and person groups."""
