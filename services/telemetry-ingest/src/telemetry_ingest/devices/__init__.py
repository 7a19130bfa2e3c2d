"""Devices and sensors of a tenant, and the MQTT credentials of each device."""
