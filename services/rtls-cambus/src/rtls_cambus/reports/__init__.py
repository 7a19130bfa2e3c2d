"""Reports over a period: presence per person and per zone, zone occupancy over time, incident response and
resolution times; each as JSON and as a streamed CSV file."""
