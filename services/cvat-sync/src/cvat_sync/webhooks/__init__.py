"""CVAT webhooks: every request audited before processing, signed bodies applied to the mirror."""
