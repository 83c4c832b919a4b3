"""The tagging worker (filled in by the service issue)."""
