"""kombu's Redis transport, made reliable for this service's one queue and hardened against junk.

1. Nothing lost in transit. kombu takes a message with BRPOP and only then records it
   as unacknowledged. A message whose BRPOP reply is still on the wire when the worker
   is killed, or when Redis restarts, is in neither place: it is lost (kombu #305,
   celery #4354). Here the worker takes it with BLMOVE into `<queue>:inflight`, and
   records it as unacknowledged and removes it from `<queue>:inflight` in one
   transaction. Items a worker left in the inflight list (seen there in two
   sweeps, one restore interval apart) go back to the queue. Messages already waiting
   behind the first come along in the same round trip (a Lua script records them as
   unacknowledged), and a batch's messages are acknowledged in one pipeline. Only the queue
   named by the `reliable_queue` transport option (the service's task queue) is fetched
   this way, when it is the channel's one queue and there is one priority step; every other
   queue (remote-control replies, broadcasts, a client's own) is kombu's as it ships, so
   nothing leaves keys behind for them.
2. Nothing on the queue stops the worker. Anyone who can LPUSH onto the list can put
   anything there, and kombu decodes each item inside the event loop: an exception there
   (not JSON, nested too deep, not an envelope, a body that is not base64, headers Celery
   cannot route) stops the whole node, and the item, still in Redis, stops every
   replacement. Here every such item is logged, counted (`quarantined` in `inspect
   batching`) and moved aside, raw and truncated, to the dead-letter stream with its
   reason; so is every message the worker rejects without requeueing (unknown task,
   wrong content type, too large). Nothing is left in the queue and nothing is dropped
   silently. Bad bodies and bad jobs inside good envelopes are handled further on
   (worker.consumer.strategy, worker.pool.pipeline).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path
from queue import Empty
from time import monotonic, time
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

from wire.dead_letters import raw_excerpt, raw_fields

logger = logging.getLogger(__name__)

INFLIGHT_SUFFIX = ":inflight"
MAX_EXTRA_PER_FETCH = 128
DEFAULT_REJECT_REASON = "rejected by the worker without requeue (unknown task, or a message it cannot run)"
# Items moved aside since this process started, by reason: `inspect batching` shows them.
QUARANTINED: Counter[str] = Counter()
LUA = Path(__file__).with_name("lua")
TAKE_MORE = (LUA / "take_more.lua").read_text()
RESTORE_ORPHAN = (LUA / "restore_orphan.lua").read_text()


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

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        """A message rejected without requeue goes to the dead-letter stream, not nowhere."""
        message = None if requeue else self._delivered.get(delivery_tag)
        if message is None or not self.channel.dead_letter_stream:
            return super().reject(delivery_tag, requeue)
        reason = self.channel.reject_reasons.pop(delivery_tag, DEFAULT_REJECT_REASON)
        with self.pipe_or_acquire() as pipe:
            self._remove_from_indices(delivery_tag, pipe)
            self.channel.dead_letter(pipe, message._raw, reason)
            pipe.execute()
        virtual.QoS.ack(self, delivery_tag)

    def renew(self, delivery_tags: list[str]) -> None:
        """Extend the visibility of messages this worker still holds: only a worker that is really
        gone has its messages restored, however long its batches run (ZADD XX: an acknowledged
        tag is not brought back)."""
        if delivery_tags:
            with self.channel.conn_or_acquire() as client:
                client.zadd(self.unacked_index_key, dict.fromkeys(delivery_tags, time()), xx=True)

    def restore_visible(self, *args: Any, **kwargs: Any) -> None:
        super().restore_visible(*args, **kwargs)
        self.channel.restore_orphans()


class Channel(kombu_redis.Channel):
    QoS = QoS
    _moved: tuple[str, bytes] | None = None
    _prerecorded = False
    _blmove_queue: str | None = None
    # Where moved-aside items go, and the one queue fetched reliably (worker.app sets these from the settings).
    dead_letter_stream: str | None = None
    dead_letter_maxlen: int = 10_000
    reliable_queue: str | None = None
    from_transport_options = kombu_redis.Channel.from_transport_options + (
        "dead_letter_stream", "dead_letter_maxlen", "reliable_queue")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seen_inflight: dict[str, set[bytes]] = {}
        self.reject_reasons: dict[str, str] = {}  # delivery tag -> why the consumer rejects it

    # --- items that must not stop the worker ----------------------------------------------------

    def dead_letter(self, pipe: Any, item: Any, reason: str, queue: str | None = None) -> None:
        """Queue an XADD of a raw item and its reason to the dead-letter stream on `pipe`."""
        QUARANTINED[reason.split(":", 1)[0]] += 1
        if not self.dead_letter_stream:
            return
        pipe.xadd(self.dead_letter_stream, raw_fields(item, reason, queue=queue or ""),
                  maxlen=self.dead_letter_maxlen, approximate=True)

    def quarantine(self, item: Any, reason: str, queue: str, inflight: str | None = None,
                   recorded_tag: str | None = None) -> None:
        """Move a raw item aside: out of the inflight list or kombu's unacked set, into the dead letters."""
        logger.error("moved an item of queue %r to the dead letters: %s: %s", queue, reason, raw_excerpt(item, 200))
        with self.conn_or_acquire() as client:
            pipe = client.pipeline()  # MULTI/EXEC: moved aside and recorded, or neither
            if inflight is not None:
                pipe.lrem(inflight, 1, item)
            if recorded_tag is not None:
                pipe.zrem(self.unacked_index_key, recorded_tag).hdel(self.unacked_key, recorded_tag)
            self.dead_letter(pipe, item, reason, queue)
            pipe.execute()

    def basic_consume(self, queue: str, no_ack: bool, callback: Any, consumer_tag: str, **kwargs: Any) -> Any:
        """Wrap kombu's per-queue callback: an item it cannot turn into a message is moved aside.

        Building the message (base64 body, delivery tag) and Celery's routing of it both run
        in the event loop, where any exception would stop the worker.
        """
        result = super().basic_consume(queue, no_ack, callback, consumer_tag, **kwargs)
        inner = self.connection._callbacks[queue]

        def guarded(raw_message: Any) -> Any:
            try:
                return inner(raw_message)
            except self.connection_errors:
                raise
            except Exception as exc:  # noqa: BLE001 - nothing on the queue may stop the worker
                self._quarantine_delivered(raw_message, queue, exc)
                return None

        self.connection._callbacks[queue] = guarded
        return result

    def _quarantine_delivered(self, raw_message: Any, queue: str, exc: Exception) -> None:
        reason = f"cannot be delivered: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        props = raw_message.get("properties") if isinstance(raw_message, dict) else None
        tag = props.get("delivery_tag") if isinstance(props, dict) else None
        tag = tag if isinstance(tag, str) else None
        if tag is not None and tag in self.qos._delivered:  # kombu recorded it: take it back out
            virtual.QoS.ack(self.qos, tag)
            self.quarantine(raw_message, reason, queue, recorded_tag=tag)
        elif self._moved is not None:  # the BLMOVE path, before kombu recorded it
            inflight, raw = self._moved
            self.quarantine(raw, reason, queue, inflight=inflight)
        else:  # recorded by TAKE_MORE in Redis only, or kombu's own BRPOP path
            self.quarantine(raw_message, reason, queue, recorded_tag=tag if self._prerecorded else None)

    def _reliable_queue(self) -> str | None:
        """The queue to fetch with BLMOVE: the configured task queue, when it is all this channel consumes."""
        queues = list(self.active_queues)
        if (queues == [self.reliable_queue] and list(self.priority_steps) == [0]
                and not self.global_keyprefix):
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
            except self.connection_errors:
                raise
            except (ValueError, TypeError, RecursionError) as exc:  # kombu's own decode: the item is gone
                QUARANTINED["not JSON"] += 1
                logger.error("dropped an item from a queue that is not a JSON message envelope: %s", exc)
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
        message, reason = decode_item(item)
        if reason:
            self.quarantine(item, reason, queue, inflight=inflight_key(queue))
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
                message, reason = decode_item(raw)
                if reason:  # cjson took it as an envelope, Python does not (deeper nesting, bad UTF-8)
                    self.quarantine(raw, reason, queue, recorded_tag=_tag_in(raw))
                    continue
                self.connection._deliver(message, queue)
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


def decode_item(item: bytes) -> tuple[Any, str]:
    """(envelope, "") or (None, why not): never raises, whatever the bytes."""
    try:
        message = loads(bytes_to_str(item))
    except RecursionError:
        return None, "not a message envelope: JSON nested too deep"
    except (ValueError, TypeError) as exc:  # JSONDecodeError, UnicodeDecodeError
        return None, f"not JSON: {' '.join(str(exc).split())[:200]}"
    if not is_envelope(message):
        return None, "not a message envelope"
    return message, ""


def _tag_in(raw: bytes) -> str | None:
    """The delivery tag of an item TAKE_MORE recorded (cjson read it; Python may not)."""
    match = re.search(rb'"delivery_tag"\s*:\s*"([^"\\]{1,200})"', raw)
    return match.group(1).decode("utf-8", "replace") if match else None


def register(schemes: tuple[str, ...] = ("redis", "rediss")) -> None:
    """Make plain redis:// and rediss:// broker URLs use this transport in this process.

    Clients, Flower and exporters then see the broker URL as what it is (a redis:// URL),
    not as `module:Transport://...`. Only the queue named by the `reliable_queue` transport
    option changes behaviour; the junk guards apply to any queue.
    """
    from kombu.transport import TRANSPORT_ALIASES

    for scheme in schemes:
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"


class Transport(kombu_redis.Transport):
    Channel = Channel

    def _deliver(self, message: Any, queue: str) -> None:
        if not is_envelope(message):  # kombu's own BRPOP path: popped already, nothing to move aside
            QUARANTINED["not a message envelope"] += 1
            logger.error("dropped an item from queue %r that is not a message envelope: %.200r", queue, message)
            return
        super()._deliver(message, queue)
