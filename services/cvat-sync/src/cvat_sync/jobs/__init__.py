"""The mirror of CVAT jobs: stored snapshots, their history, queries and the REST API."""
