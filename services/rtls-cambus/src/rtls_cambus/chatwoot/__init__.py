"""Chatwoot: a conversation per incident, and the incident's thread mirrored both ways."""
