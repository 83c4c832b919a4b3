-- A large batch's message bodies, taken from the key the consumer process left them under.
-- A script, not MULTI/EXEC: a full Redis refuses every transaction, and this one only frees memory.
-- KEYS: the batch key. Returns the bodies (empty if the key is gone).
local bodies = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
return bodies
