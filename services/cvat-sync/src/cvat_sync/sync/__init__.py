"""Pull synchronisation from CVAT: runs, one at a time, recorded with their counts and outcome."""
