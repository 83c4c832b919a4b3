-- Put an orphan back at the consuming end of the queue, once, whoever else sweeps too.
-- KEYS: inflight list, queue. ARGV: the item.
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  return 1
end
return 0
