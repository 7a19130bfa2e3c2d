"""Authentication and authorization endpoints the MQTT broker calls for each device (EMQX, mosquitto-go-auth)."""
