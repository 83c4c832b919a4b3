"""The client library and CLI for backends (filled in by the service issue). Never imports torch."""
