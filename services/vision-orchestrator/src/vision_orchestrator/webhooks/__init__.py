"""What machines post: heartbeats, status reports and results (`/api/v1/webhooks/...`)."""
