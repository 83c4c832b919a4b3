-- The queue's length, and the job count of up to ARGV[1] messages from each end of it, read
-- from the tagger_jobs header near each envelope's end (our client's messages); a message
-- without the header comes back whole, for the caller to count its jobs in its body.
-- KEYS: the queue. Returns the length, then per sampled message its count or its bytes.
local n = redis.call('LLEN', KEYS[1])
local k = tonumber(ARGV[1])
local items
if n <= 2 * k then
  items = redis.call('LRANGE', KEYS[1], 0, -1)
else
  items = redis.call('LRANGE', KEYS[1], 0, k - 1)
  for _, item in ipairs(redis.call('LRANGE', KEYS[1], -k, -1)) do
    items[#items + 1] = item
  end
end
local out = {n}
for _, item in ipairs(items) do
  local count = string.match(string.sub(item, -2048), '"tagger_jobs":%s*(%d+)[,}]')
  out[#out + 1] = count and tonumber(count) or item
end
return out
