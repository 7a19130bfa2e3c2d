"""Threshold rules per sensor (min/max with hysteresis) and their evaluation on ingest."""
