"""kombu's Redis transport, made reliable for this service's one queue and hardened against junk.

1. Nothing lost in transit. kombu takes a message with BRPOP and only then records it
   as unacknowledged. A message whose BRPOP reply is still on the wire when the worker
   is killed, or when Redis restarts, is in neither place: it is lost (kombu #305,
   celery #4354). Here the worker takes it with BLMOVE into `<queue>:inflight`, and
   records it as unacknowledged and removes it from `<queue>:inflight` in one
   transaction. Items a worker left in the inflight list (seen there in two
   sweeps, one restore interval apart) go back to the queue. Messages already waiting
   behind the first come along in the same round trip (a Lua script records them as
   unacknowledged), and a batch's messages are acknowledged in one pipeline. With one queue and one
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
MAX_EXTRA_PER_FETCH = 128
# After a BLMOVE wakes the worker, take up to ARGV[1] more messages in the same round trip,
# recording each as unacknowledged exactly as kombu does ([envelope, exchange, routing key]
# under its delivery tag). A non-envelope item is put back and left to the BLMOVE path,
# which drops it with a log line.
TAKE_MORE = """
local out = {}
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for i = 1, tonumber(ARGV[1]) do
  local item = redis.call('RPOP', KEYS[1])
  if not item then break end
  local ok, msg = pcall(cjson.decode, item)
  if not ok or type(msg) ~= 'table' or type(msg.properties) ~= 'table'
      or type(msg.properties.delivery_tag) ~= 'string' then
    redis.call('RPUSH', KEYS[1], item)
    break
  end
  local tag = msg.properties.delivery_tag
  redis.call('HSET', KEYS[2], tag, '[' .. item .. ',"",' .. cjson.encode(ARGV[2]) .. ']')
  redis.call('ZADD', KEYS[3], now, tag)
  out[#out + 1] = item
end
return out
"""
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
        if self.channel._prerecorded:  # TAKE_MORE already recorded it in Redis
            return virtual.QoS.append(self, message, delivery_tag)
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

    def ack_many(self, delivery_tags: list[str]) -> None:
        """Acknowledge a whole batch's messages in one round trip (kombu acks one at a time)."""
        with self.pipe_or_acquire() as pipe:
            for tag in delivery_tags:
                pipe.zrem(self.unacked_index_key, tag).hdel(self.unacked_key, tag)
            pipe.execute()
        for tag in delivery_tags:
            virtual.QoS.ack(self, tag)

    def restore_visible(self, *args: Any, **kwargs: Any) -> None:
        super().restore_visible(*args, **kwargs)
        self.channel.restore_orphans()


class Channel(kombu_redis.Channel):
    QoS = QoS
    _moved: tuple[str, bytes] | None = None
    _prerecorded = False
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
            with self.conn_or_acquire() as client:
                client.lrem(inflight_key(queue), 1, item)
            raise Empty()
        self._moved = (inflight_key(queue), item)
        try:
            self.connection._deliver(message, queue)
        finally:
            self._moved = None
        self._take_more(queue)
        return True

    def _take_more(self, queue: str) -> None:
        """Messages already waiting come in one round trip, not one BLMOVE each."""
        room = min(self.qos.can_consume_max_estimate() or 0, MAX_EXTRA_PER_FETCH)
        if room <= 0:
            return
        # Not on self.client: its connection is the one kombu keeps for the blocking fetch.
        with self.conn_or_acquire() as client:
            items = client.eval(TAKE_MORE, 3, queue, self.unacked_key, self.unacked_index_key, room, queue)
        self._prerecorded = True
        try:
            for raw in items:
                self.connection._deliver(loads(bytes_to_str(raw)), queue)
        finally:
            self._prerecorded = False

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
