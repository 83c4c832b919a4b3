-- Record a message taken with BLMOVE as unacknowledged, exactly as kombu does ([envelope,
-- exchange, routing key] under its delivery tag), and take it out of the inflight list: one step.
-- The LREM comes first: while Redis is full (maxmemory, noeviction) it refuses a script's
-- memory-growing command only until the script has written, and this one moves the item, it
-- does not add one; MULTI/EXEC would be refused whole.
-- KEYS: unacked index, unacked hash, inflight list. ARGV: delivery tag, now, record json, raw item.
redis.call('LREM', KEYS[3], 1, ARGV[4])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
