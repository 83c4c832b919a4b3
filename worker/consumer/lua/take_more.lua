-- After a BLMOVE wakes the worker, take up to ARGV[1] more messages in the same round trip,
-- recording each as unacknowledged exactly as kombu does ([envelope, exchange, routing key]
-- under its delivery tag). Returns item, tag pairs. The tag is read from the item's tail, where
-- kombu's envelopes and ours keep it (properties last, delivery_tag last in them), without
-- decoding the whole item: a bulk message is tens of KB of JSON (MB with photos), and decoding
-- it cost more Redis CPU than the rest of its delivery. Only an item whose tail holds no tag is
-- decoded; the worker checks that the tag it gets back is the one the envelope holds.
-- An item with no tag at all is put back and left to the BLMOVE path, which moves it aside.
-- KEYS: queue, kombu's unacked hash, kombu's unacked index. ARGV: how many, routing key.
local out = {}
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for i = 1, tonumber(ARGV[1]) do
  local item = redis.call('RPOP', KEYS[1])
  if not item then break end
  local tag = string.match(string.sub(item, -1024), '.*"delivery_tag"%s*:%s*"([^"\\]+)"')
  if not tag then
    local ok, msg = pcall(cjson.decode, item)
    if ok and type(msg) == 'table' and type(msg.properties) == 'table'
        and type(msg.properties.delivery_tag) == 'string' then
      tag = msg.properties.delivery_tag
    end
  end
  if not tag then
    redis.call('RPUSH', KEYS[1], item)
    break
  end
  redis.call('HSET', KEYS[2], tag, '[' .. item .. ',"",' .. cjson.encode(ARGV[2]) .. ']')
  redis.call('ZADD', KEYS[3], now, tag)
  out[#out + 1] = item
  out[#out + 1] = tag
end
return out
