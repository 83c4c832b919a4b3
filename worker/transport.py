"""kombu's Redis transport, made reliable for this service's one queue and hardened against junk.

1. Nothing lost in transit. kombu takes a message with BRPOP and only then records it
   as unacknowledged. A message whose BRPOP reply is still on the wire when the worker
   is killed, or when Redis restarts, is in neither place: it is lost (kombu #305,
   celery #4354). Here the worker takes it with BLMOVE into `<queue>:inflight`, and
   records it as unacknowledged and removes it from `<queue>:inflight` in one
   transaction. Items a worker left in the inflight list (seen there in two
   sweeps, one restore interval apart) go back to the queue. With one queue and one
   priority step (this service's configuration) every fetch goes this way; anything
   else falls back to kombu's BRPOP.
2. Junk in the queue. Anyone who can LPUSH onto the list can put anything there;
   kombu decodes each item inside the event loop, and a non-JSON item (or one without
   the envelope's fields) raises there, which stops the worker. Such items are logged
   and dropped. Envelopes carrying pickle, bad bodies or bad jobs are handled further
   on (worker.consumer, worker.pipeline).
"""

from __future__ import annotations

import json
import logging
from queue import Empty
from time import monotonic, time
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

logger = logging.getLogger(__name__)

INFLIGHT_SUFFIX = ":inflight"
# Put an orphan back at the consuming end of the queue, once, whoever else sweeps too.
RESTORE_ORPHAN = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  return 1
end
return 0
"""


def inflight_key(queue: str) -> str:
    return queue + INFLIGHT_SUFFIX


def is_envelope(message: Any) -> bool:
    if not isinstance(message, dict) or "body" not in message:
        return False
    props = message.get("properties")
    return (isinstance(props, dict) and "delivery_tag" in props and isinstance(props.get("delivery_info"), dict)
            and isinstance(message.get("headers", {}), dict))


class QoS(kombu_redis.QoS):
    def append(self, message: Any, delivery_tag: str) -> None:
        moved = self.channel._moved
        if moved is None:
            return super().append(message, delivery_tag)
        source, raw = moved
        delivery = message.delivery_info
        with self.pipe_or_acquire() as pipe:  # a MULTI/EXEC transaction
            pipe.zadd(self.unacked_index_key, {delivery_tag: time()}) \
                .hset(self.unacked_key, delivery_tag,
                      dumps([message._raw, delivery["exchange"], delivery["routing_key"]])) \
                .lrem(source, 1, raw) \
                .execute()
        virtual.QoS.append(self, message, delivery_tag)

    def restore_visible(self, *args: Any, **kwargs: Any) -> None:
        super().restore_visible(*args, **kwargs)
        self.channel.restore_orphans()


class Channel(kombu_redis.Channel):
    QoS = QoS
    _moved: tuple[str, bytes] | None = None
    _blmove_queue: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seen_inflight: dict[str, set[bytes]] = {}

    def _reliable_queue(self) -> str | None:
        queues = list(self.active_queues)
        if len(queues) == 1 and list(self.priority_steps) == [0] and not self.global_keyprefix:
            return queues[0]
        return None

    def _brpop_start(self, timeout: Any = None) -> None:
        queue = self._reliable_queue()
        if queue is None:
            self._blmove_queue = None
            return super()._brpop_start(timeout)
        if timeout is None:
            timeout = self.brpop_timeout
        self._blmove_queue = queue
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()
        self.client.connection.send_command("BLMOVE", queue, inflight_key(queue), "RIGHT", "LEFT", timeout or 0)

    def _brpop_read(self, **options: Any) -> bool:
        queue = self._blmove_queue
        if queue is None:
            try:
                return bool(super()._brpop_read(**options))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                logger.error("dropped an item from the queue that is not a JSON message envelope: %s", exc)
                raise Empty() from None
        try:
            try:
                item = self.client.parse_response(self.client.connection, "BLMOVE", **options)
            except self.connection_errors:
                self.client.connection.disconnect()  # reconnect on the next turn
                raise
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()
        if not item:
            raise Empty()
        try:
            message = loads(bytes_to_str(item))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            message, reason = None, f"not JSON ({exc})"
        else:
            reason = "" if is_envelope(message) else "not a message envelope"
        if reason:
            logger.error("dropped an item from queue %r: %s: %.200r", queue, reason, item)
            self.client.lrem(inflight_key(queue), 1, item)
            raise Empty()
        self._moved = (inflight_key(queue), item)
        try:
            self.connection._deliver(message, queue)
        finally:
            self._moved = None
        return True

    def restore_orphans(self) -> None:
        """Return items that sat in an inflight list for a whole restore interval to their queue."""
        queue = self._reliable_queue()
        if queue is None:
            return
        key = inflight_key(queue)
        with self.conn_or_acquire() as client:
            items = set(client.lrange(key, 0, 999))
            orphans = items & self._seen_inflight.get(key, set())
            for raw in orphans:
                if client.eval(RESTORE_ORPHAN, 2, key, queue, raw):
                    logger.warning("restored a message a worker took but never recorded (it died or lost Redis)")
            self._seen_inflight[key] = items - orphans


class Transport(kombu_redis.Transport):
    Channel = Channel

    def _deliver(self, message: Any, queue: str) -> None:
        if not is_envelope(message):  # kombu's own BRPOP path
            logger.error("dropped an item from queue %r that is not a message envelope: %.200r", queue, message)
            return
        super()._deliver(message, queue)
