-- Move an item aside: out of the inflight list and/or kombu's unacked set, into the dead-letter
-- stream, in one step. The removals come first, so the XADD that follows is allowed while Redis
-- is full (a dead letter keeps at most 8 KB of the item it replaces).
-- KEYS: inflight list, unacked index, unacked hash, dead-letter stream ("" for none).
-- ARGV: "1" if the item is in the inflight list, the item, "1" if it is recorded as unacknowledged,
-- its delivery tag (which may be any string, "" too), the stream's maxlen, then the dead letter's
-- field/value pairs.
if ARGV[1] == '1' then
  redis.call('LREM', KEYS[1], 1, ARGV[2])
end
if ARGV[3] == '1' then
  redis.call('ZREM', KEYS[2], ARGV[4])
  redis.call('HDEL', KEYS[3], ARGV[4])
end
if KEYS[4] ~= '' then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', unpack(ARGV, 6))
end
return 1
