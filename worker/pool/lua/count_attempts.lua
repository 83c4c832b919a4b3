-- Deliveries per job, and whether it already has its final result; one call per batch.
-- From here on the jobs' attempts count, so the message-level redelivery counts of the
-- messages just parsed start over.
-- KEYS: n attempt keys, then n result keys, then message attempt keys to reset. ARGV: ttl, n.
-- Returns attempts, has-result pairs.
local n = tonumber(ARGV[2])
for i = 2 * n + 1, #KEYS do
  redis.call('DEL', KEYS[i])
end
local out = {}
for i = 1, n do
  out[2 * i - 1] = redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], ARGV[1])
  out[2 * i] = redis.call('EXISTS', KEYS[n + i])
end
return out
