"""cvat-sync: Mirrors CVAT jobs into Postgres: pull sync, HMAC-verified webhooks, audit log, web pages."""
