"""A machine's latest status and its statistics over a period: `/api/v1/machines/{id}/status/`, `/statistics/`."""
