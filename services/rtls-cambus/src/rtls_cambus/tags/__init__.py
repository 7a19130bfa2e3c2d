"""BLE tags and who carries them."""
