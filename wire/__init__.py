"""The contract the client (producer) and the worker both import: messages, error codes, image
formats, the Celery envelope, Redis key names, dead letters, shared settings, the connection.

Standard library and pydantic only: no torch, numpy or Pillow, so backends install it cheaply.
"""
