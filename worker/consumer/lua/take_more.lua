-- After a BLMOVE wakes the worker, take up to ARGV[1] more messages in the same round trip,
-- recording each as unacknowledged exactly as kombu does ([envelope, exchange, routing key]
-- under its delivery tag). A non-envelope item is put back and left to the BLMOVE path,
-- which moves it aside to the dead letters.
-- KEYS: queue, kombu's unacked hash, kombu's unacked index. ARGV: how many, routing key.
local out = {}
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for i = 1, tonumber(ARGV[1]) do
  local item = redis.call('RPOP', KEYS[1])
  if not item then break end
  local ok, msg = pcall(cjson.decode, item)
  if not ok or type(msg) ~= 'table' or type(msg.properties) ~= 'table'
      or type(msg.properties.delivery_tag) ~= 'string' then
    redis.call('RPUSH', KEYS[1], item)
    break
  end
  local tag = msg.properties.delivery_tag
  redis.call('HSET', KEYS[2], tag, '[' .. item .. ',"",' .. cjson.encode(ARGV[2]) .. ']')
  redis.call('ZADD', KEYS[3], now, tag)
  out[#out + 1] = item
end
return out
