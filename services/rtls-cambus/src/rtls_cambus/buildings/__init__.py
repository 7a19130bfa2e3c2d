"""Buildings and their floors."""
