"""CVAT's REST API as cvat-sync uses it: authentication, paged job listing, names and annotation counts."""
