"""Devices: BLE gateways, cameras and camera groups."""
