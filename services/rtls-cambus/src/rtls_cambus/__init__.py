"""rtls-cambus: BLE gateways and cameras over MQTT: positions, presence, alerts, incidents, webhooks, Chatwoot."""
