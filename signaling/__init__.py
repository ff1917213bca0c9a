"""The web server: REST API, WebSocket protocol, tokens, and the pages."""
