-- Acknowledge messages: drop them from kombu's unacked index and hash, a batch in one round trip.
-- Nothing here grows memory, so it runs while Redis is full (MULTI/EXEC would be refused whole).
-- KEYS: unacked index, unacked hash. ARGV: delivery tags.
for i = 1, #ARGV do
  redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('HDEL', KEYS[2], ARGV[i])
end
return #ARGV
