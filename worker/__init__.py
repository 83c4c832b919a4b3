"""The tagging worker: `celery -A worker worker`. The consumer process never imports torch."""

from worker.app import app

__all__ = ["app"]
