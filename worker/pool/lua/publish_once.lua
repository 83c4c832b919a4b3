-- Each job's first final result, once: stored under Celery's result key (SET NX, with a
-- TTL), published for AsyncResult.get() subscribers, appended to the results stream.
-- A later result for the same job changes nothing. Then the results of standard senders'
-- messages, under their task ids, the same way (no stream entry: their jobs have theirs).
-- Redis CPU per job is the service's scale limit, so: PUBLISH only to channels someone listens
-- on (one PUBSUB NUMSUB for the batch; a subscriber that comes later finds the key, as Celery's
-- AsyncResult.get looks it up after subscribing), and trim the stream once per batch.
-- KEYS: n result keys, the results stream, then m message result keys.
-- ARGV: ttl, stream maxlen, n, then per result: meta json, job id, status, result json;
-- then per message: meta json. Returns 1 (stored) or 0 (duplicate) per job result.
local n = tonumber(ARGV[3])
local stream = KEYS[n + 1]
local channels = {}
for i = 1, #KEYS do
  if i ~= n + 1 then channels[#channels + 1] = KEYS[i] end
end
local numsub = redis.call('PUBSUB', 'NUMSUB', unpack(channels))
local listened = {}
for i = 1, #numsub, 2 do listened[numsub[i]] = numsub[i + 1] > 0 end
local out = {}
for i = 1, n do
  local a = 4 + 4 * (i - 1)
  if redis.call('SET', KEYS[i], ARGV[a], 'NX', 'EX', ARGV[1]) then
    if listened[KEYS[i]] then
      redis.call('PUBLISH', KEYS[i], ARGV[a])
    end
    redis.call('XADD', stream, '*', 'job_id', ARGV[a + 1], 'status', ARGV[a + 2], 'result', ARGV[a + 3])
    out[i] = 1
  else
    out[i] = 0
  end
end
if n > 0 then
  redis.call('XTRIM', stream, 'MAXLEN', '~', ARGV[2])
end
for j = n + 2, #KEYS do
  local meta = ARGV[4 + 4 * n + (j - n - 2)]
  if redis.call('SET', KEYS[j], meta, 'NX', 'EX', ARGV[1]) and listened[KEYS[j]] then
    redis.call('PUBLISH', KEYS[j], meta)
  end
end
return out
