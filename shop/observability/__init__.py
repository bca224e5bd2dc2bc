"""What operators see: a request id and one JSON log line per request, and errors sent to Sentry."""
