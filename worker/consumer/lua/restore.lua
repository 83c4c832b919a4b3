-- Put an unacknowledged message back on its queue, once, whoever else restores or acks it too.
-- kombu does this with WATCH/MULTI/EXEC, which a full Redis refuses whole; here the HDEL comes
-- first, so the push that follows is allowed (the message moves, nothing is added).
-- KEYS: unacked index, unacked hash, then the queues. ARGV: delivery tag, envelope, "1" to push
-- at the far end (LPUSH: a rejected message goes to the back), "0" at the consuming end.
local taken = redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
if taken == 0 then
  return 0
end
for i = 3, #KEYS do
  if ARGV[3] == '1' then
    redis.call('LPUSH', KEYS[i], ARGV[2])
  else
    redis.call('RPUSH', KEYS[i], ARGV[2])
  end
end
return 1
