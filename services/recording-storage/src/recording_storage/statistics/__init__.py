"""Upload statistics for operators: volume per day, failed uploads, sessions in progress."""
