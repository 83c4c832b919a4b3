-- Redeliveries per job, and whether it already has its final result; one call per batch.
-- KEYS: n attempt keys, then n result keys. ARGV: ttl. Returns count, has-result pairs.
local n = #KEYS / 2
local out = {}
for i = 1, n do
  out[2 * i - 1] = redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], ARGV[1])
  out[2 * i] = redis.call('EXISTS', KEYS[n + i])
end
return out
