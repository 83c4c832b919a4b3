-- Redeliveries of messages Redis delivered again, counted until their jobs are.
-- KEYS: message attempt keys. ARGV: ttl. Returns the count per message.
local out = {}
for i = 1, #KEYS do
  out[i] = redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], ARGV[1])
end
return out
