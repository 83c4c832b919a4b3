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
3. A full Redis stops nothing either. Under maxmemory with noeviction, Redis refuses every
   command that may add memory and every MULTI/EXEC, even one that only deletes; kombu's
   bookkeeping is all MULTI/EXEC, and the refusal stopped the node. Here acks, restores and
   moves aside are Lua scripts that remove before they add (Redis lets a script that has
   written go on), and a refused BLMOVE makes the consumer ask again a second later.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from queue import Empty
from time import monotonic, sleep, time
from typing import Any

from celery.worker import state as worker_state
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads
from redis.exceptions import OutOfMemoryError, ResponseError

from wire.connection import redis_is_full
from wire.dead_letters import raw_excerpt, raw_fields

logger = logging.getLogger(__name__)

INFLIGHT_SUFFIX = ":inflight"
MAX_EXTRA_PER_FETCH = 128
FULL_RETRY_S = 1.0  # while Redis refuses writes, how often the consumer asks for messages again
DEFAULT_REJECT_REASON = "rejected by the worker without requeue (unknown task, or a message it cannot run)"
# Items moved aside since this process started, by reason: `inspect batching` shows them.
QUARANTINED: Counter[str] = Counter()
LUA = Path(__file__).with_name("lua")
TAKE_MORE = (LUA / "take_more.lua").read_text()
RESTORE_ORPHAN = (LUA / "restore_orphan.lua").read_text()
RECORD, ACK, RESTORE, MOVE_ASIDE = ((LUA / f"{name}.lua").read_text()
                                    for name in ("record", "ack", "restore", "move_aside"))


def inflight_key(queue: str) -> str:
    return queue + INFLIGHT_SUFFIX


def is_envelope(message: Any) -> bool:
    if not isinstance(message, dict) or "body" not in message:
        return False
    props = message.get("properties")
    # kombu keys its bookkeeping by the tag: a number would be recorded as text and never found again
    return (isinstance(props, dict) and isinstance(props.get("delivery_tag"), str)
            and isinstance(props.get("delivery_info"), dict) and isinstance(message.get("headers", {}), dict))


class QoS(kombu_redis.QoS):
    """kombu's unacked bookkeeping, in Lua scripts instead of MULTI/EXEC: a full Redis (maxmemory,
    noeviction) refuses every transaction, even one that only deletes, and kombu's restore would
    then fail halfway or stop the node; these scripts free memory before they add any."""

    def append(self, message: Any, delivery_tag: str) -> None:
        if self.channel._prerecorded:  # TAKE_MORE already recorded it in Redis
            return virtual.QoS.append(self, message, delivery_tag)
        moved = self.channel._moved
        if moved is None:
            return super().append(message, delivery_tag)
        source, raw = moved
        delivery = message.delivery_info
        record = dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
        with self.channel.conn_or_acquire() as client:
            client.eval(RECORD, 3, self.unacked_index_key, self.unacked_key, source, delivery_tag, time(), record, raw)
        virtual.QoS.append(self, message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        self.ack_many([delivery_tag])

    def ack_many(self, delivery_tags: list[str]) -> None:
        """Acknowledge a whole batch's messages in one round trip (kombu acks one at a time)."""
        with self.channel.conn_or_acquire() as client:
            client.eval(ACK, 2, self.unacked_index_key, self.unacked_key, *delivery_tags)
        for tag in delivery_tags:
            virtual.QoS.ack(self, tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        """A message rejected without requeue goes to the dead-letter stream, not nowhere."""
        message = None if requeue else self._delivered.get(delivery_tag)
        if message is None or not self.channel.dead_letter_stream:
            return super().reject(delivery_tag, requeue)
        reason = self.channel.reject_reasons.pop(delivery_tag, DEFAULT_REJECT_REASON)
        self.channel.move_aside(message._raw, reason, tag=delivery_tag)
        virtual.QoS.ack(self, delivery_tag)

    def restore_by_tag(self, tag: str, client: Any = None, leftmost: bool = False) -> None:
        """Put an unacknowledged message back on its queue, marked redelivered (as kombu does)."""
        with self.channel.conn_or_acquire(client) as client:
            raw = client.hget(self.unacked_key, tag)
            queues: list[str] = []
            envelope = ""
            if raw is not None:
                message, exchange, routing_key = loads(bytes_to_str(raw))
                envelope, queues = self.channel.restore_target(message, exchange, routing_key)
            client.eval(RESTORE, 2 + len(queues), self.unacked_index_key, self.unacked_key, *queues, tag, envelope,
                        int(leftmost))

    def renew(self, delivery_tags: list[str]) -> None:
        """Extend the visibility of messages this worker still holds: only a worker that is really
        gone has its messages restored, however long its batches run (ZADD XX: an acknowledged
        tag is not brought back)."""
        if delivery_tags:
            try:
                with self.channel.conn_or_acquire() as client:
                    client.zadd(self.unacked_index_key, dict.fromkeys(delivery_tags, time()), xx=True)
            except OutOfMemoryError:  # refused while Redis is full; so is restore_visible's lock: nothing restores
                self.channel._wait_for_room()

    def restore_visible(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().restore_visible(*args, **kwargs)
        except OutOfMemoryError:  # its lock is a SET NX, refused while Redis is full: next round
            self.channel._wait_for_room()
        self.channel.restore_orphans()


class Channel(kombu_redis.Channel):
    QoS = QoS
    _moved: tuple[str, bytes] | None = None
    _prerecorded = False
    _blmove_queue: str | None = None
    _full_until = 0.0  # monotonic time before which no BLMOVE is sent (Redis was full)
    _full_since: float | None = None
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

    def move_aside(self, item: Any, reason: str, queue: str = "", inflight: str | None = None,
                   tag: str | None = None) -> bool:
        """Move a raw item to the dead letters, out of the inflight list or kombu's unacked set, in one step.

        False if Redis is full and nothing could be removed first: the item stays where it was (the
        inflight sweep or the visibility timeout brings it back) and is moved aside once there is room.
        """
        fields = raw_fields(item, reason, queue=queue) if self.dead_letter_stream else {}
        args = ["1" if inflight else "0", item if inflight else "", "0" if tag is None else "1", tag or "",
                self.dead_letter_maxlen]
        for name, value in fields.items():
            args += [name, value]
        try:
            with self.conn_or_acquire() as client:
                client.eval(MOVE_ASIDE, 4, inflight or "", self.unacked_index_key, self.unacked_key,
                            self.dead_letter_stream or "", *args)
        except ResponseError as exc:
            if not redis_is_full(exc):
                raise
            logger.warning("Redis is full: an item to move aside stays where it is until there is room (%s)", reason)
            return False
        QUARANTINED[reason.split(":", 1)[0]] += 1
        return True

    def quarantine(self, item: Any, reason: str, queue: str, inflight: str | None = None,
                   recorded_tag: str | None = None) -> None:
        """Move a raw item aside: out of the inflight list or kombu's unacked set, into the dead letters."""
        logger.error("moved an item of queue %r to the dead letters: %s: %s", queue, reason, raw_excerpt(item, 200))
        self.move_aside(item, reason, queue, inflight=inflight, tag=recorded_tag)

    # --- kombu's declarations, while Redis is full ----------------------------------------------

    def _size(self, queue: str) -> int:
        """As kombu's, without MULTI/EXEC: a full Redis refuses a transaction even of reads."""
        with self.conn_or_acquire() as client:
            pipe = client.pipeline(transaction=False)
            for priority in self.priority_steps:
                pipe.llen(self._q_for_pri(queue, priority))
            return sum(n for n in pipe.execute() if isinstance(n, int))

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        """kombu records a binding with SADD, which a full Redis refuses even when it holds the binding
        already (at every restart): then there is nothing to do; a new binding waits for room."""
        while True:
            try:
                return super()._queue_bind(exchange, routing_key, pattern, queue)
            except ResponseError as exc:
                if not redis_is_full(exc):
                    raise
            member = self.sep.join([routing_key or "", pattern or "", queue or ""])
            with self.conn_or_acquire() as client:
                if client.sismember(self.keyprefix_queue % (exchange,), member):
                    return
            self._wait_for_room()
            worker_state.maybe_shutdown()  # a SIGTERM while waiting stops the worker as usual
            sleep(FULL_RETRY_S)

    def restore_target(self, message: Any, exchange: str, routing_key: str) -> tuple[str, list[str]]:
        """The envelope to put back, marked redelivered, and the queue(s) it goes to (as kombu's restore)."""
        try:
            message["headers"]["redelivered"] = True
            message["properties"]["delivery_info"]["redelivered"] = True
        except (KeyError, TypeError):
            pass
        priority = self._get_message_priority(message, reverse=False)
        return dumps(message), [self._q_for_pri(q, priority) for q in self._lookup(exchange, routing_key)]

    def _restore(self, message: Any, leftmost: bool = False) -> None:
        self.qos.restore_by_tag(message.delivery_tag, leftmost=leftmost)

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
            except Exception as exc:  # noqa: BLE001 - nothing on the queue may stop the worker
                # kombu counts KeyError among connection errors; here it is a field the item lacks, and
                # re-raising it restarted the consumer, the item back in the queue, forever
                if isinstance(exc, self.connection_errors) and not isinstance(exc, KeyError):
                    raise
                if redis_is_full(exc):  # not the item's fault: it stays in Redis, and comes back
                    logger.warning("Redis is full: a message stays in Redis and is delivered again later")
                    return None
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
        if monotonic() < self._full_until:  # Redis refused the last BLMOVE: the loop asks again next tick
            return
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
            except OutOfMemoryError:  # BLMOVE may add a key: refused while Redis is full
                self._wait_for_room()
                raise Empty() from None
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()
        if self._full_since is not None:
            logger.warning("Redis accepts writes again after %.0f s: taking messages", monotonic() - self._full_since)
            self._full_since = None
        if item is None:  # BLMOVE timed out; an empty item (b"") is junk like any other, moved aside below
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

    def _wait_for_room(self) -> None:
        """Redis is full (maxmemory, noeviction): take nothing for a while, then try again; never stop."""
        now = monotonic()
        self._full_until = now + FULL_RETRY_S
        if self._full_since is None:
            self._full_since = now
            logger.warning("Redis is full (maxmemory reached, noeviction): taking no messages until it has room; "
                           "asking again every %.0f s", FULL_RETRY_S)

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
            for raw, tag in zip(items[::2], items[1::2]):
                recorded = tag.decode("utf-8", "replace")
                message, reason = decode_item(raw)
                if not reason and message["properties"]["delivery_tag"] != recorded:
                    reason = "not a message envelope: a delivery tag outside its properties"
                if reason:  # the script took it for an envelope, Python does not (nesting, bad UTF-8, ...)
                    self.quarantine(raw, reason, queue, recorded_tag=recorded)
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
    if not isinstance((message.get("headers") or {}).get("task"), str):
        # Celery would read it as a protocol-1 message, and drop it (acknowledged, logged) if its body will not decode
        return None, "not a task message: no task header"
    return message, ""


def register(schemes: tuple[str, ...] = ("redis", "rediss"), transport: str = f"{__name__}:Transport") -> None:
    """Make plain redis:// and rediss:// broker URLs (or `schemes`) use this transport in this process.

    Clients, Flower and exporters then see the broker URL as what it is (a redis:// URL),
    not as `module:Transport://...`. Only the queue named by the `reliable_queue` transport
    option changes behaviour; the junk guards apply to any queue.
    """
    from kombu.transport import TRANSPORT_ALIASES

    for scheme in schemes:
        TRANSPORT_ALIASES[scheme] = transport


class Transport(kombu_redis.Transport):
    Channel = Channel

    def _deliver(self, message: Any, queue: str) -> None:
        if not is_envelope(message):  # kombu's own BRPOP path: popped already, nothing to move aside
            QUARANTINED["not a message envelope"] += 1
            logger.error("dropped an item from queue %r that is not a message envelope: %.200r", queue, message)
            return
        super()._deliver(message, queue)
