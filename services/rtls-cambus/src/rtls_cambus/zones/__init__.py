"""Zones: named areas of a floor."""
