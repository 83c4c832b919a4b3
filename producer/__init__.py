"""The client library and CLI that backends install to submit product images and read their tags.

    from producer import TaggerClient
    client = TaggerClient()                       # REDIS_URL and TAGGER_* from the environment
    print(client.submit("shirt.jpg").get(timeout=10).label)

No torch, numpy or Pillow: the base install is enough.
"""

from producer.client import JobHandle, TaggerClient
from producer.errors import (
           DecodeError,
           QueueFull,
           RedisFull,
           ResultTimeout,
           TaggerError,
)
from producer.settings import ClientSettings
from wire.dead_letters import DeadLetter
from wire.errors import ErrorCode
from wire.messages import Job, Status, TagResult

__all__ = ["TaggerClient", "JobHandle", "ClientSettings", "Job", "TagResult", "Status", "ErrorCode", "DeadLetter",
           "TaggerError", "DecodeError", "QueueFull", "RedisFull", "ResultTimeout"]
