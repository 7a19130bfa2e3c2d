"""Ingest over MQTT: BLE gateway readings and CAM-BUS camera messages, gateway presence, camera commands."""
