"""E-mail notifications of alerts and incidents."""
