"""Retention: each tenant keeps `retention_days` of readings; older partitions are dropped by a periodic sweep."""
