"""The service: REST and WebSocket API, dashboard, metrics, over a journal session."""
