"""Heartbeats: the day-partitioned time series, and machines' presence (online on a heartbeat, offline when
they stop)."""
