"""Web pages of cvat-sync: HTML, CSS and JS served from the package, reading the REST API."""
