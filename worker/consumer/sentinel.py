"""The hardened transport (worker.consumer.transport) for a Redis behind Sentinel: `sentinel://` URLs.

kombu's SentinelChannel changes only where connections come from (a pool that asks the
Sentinels for the current primary); everything our Channel adds (the BLMOVE fetch, moving
junk aside, the scripts that work while Redis is full) is the same on that pool. After a
failover the consumer reconnects, to the new primary, as after any lost connection.
"""

from __future__ import annotations

from kombu.transport import redis as kombu_redis

from worker.consumer.transport import Channel, Transport


class SentinelChannel(Channel, kombu_redis.SentinelChannel):
    from_transport_options = tuple(dict.fromkeys(Channel.from_transport_options
                                                 + kombu_redis.SentinelChannel.from_transport_options))


class SentinelTransport(Transport):
    Channel = SentinelChannel
    default_port = kombu_redis.SentinelTransport.default_port
