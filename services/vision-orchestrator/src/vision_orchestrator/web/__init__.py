"""The service's web pages (operators and up): the dashboard, the machine board, the queue, an inspection."""
