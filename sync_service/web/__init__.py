"""The daemon's status page: an HTML page and its charts, rendered on the server."""
