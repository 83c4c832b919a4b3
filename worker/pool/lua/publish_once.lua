-- Each job's first final result, once: stored under Celery's result key (SET NX, with a
-- TTL), published for AsyncResult.get() subscribers, appended to the results stream.
-- A later result for the same job changes nothing.
-- KEYS: n result keys, then the results stream. ARGV: ttl, stream maxlen, then per result:
-- meta json, job id, status, result json. Returns 1 (stored) or 0 (duplicate) per result.
-- Redis CPU per job is the service's scale limit, so: PUBLISH only to channels someone listens
-- on (one PUBSUB NUMSUB for the batch; a subscriber that comes later finds the key, as Celery's
-- AsyncResult.get looks it up after subscribing), and trim the stream once per batch.
local n = #KEYS - 1
local stream = KEYS[n + 1]
local listened = redis.call('PUBSUB', 'NUMSUB', unpack(KEYS, 1, n))
local out = {}
for i = 1, n do
  local a = 2 + 4 * (i - 1)
  if redis.call('SET', KEYS[i], ARGV[a + 1], 'NX', 'EX', ARGV[1]) then
    if listened[2 * i] > 0 then
      redis.call('PUBLISH', KEYS[i], ARGV[a + 1])
    end
    redis.call('XADD', stream, '*', 'job_id', ARGV[a + 2], 'status', ARGV[a + 3], 'result', ARGV[a + 4])
    out[i] = 1
  else
    out[i] = 0
  end
end
redis.call('XTRIM', stream, 'MAXLEN', '~', ARGV[2])
return out
