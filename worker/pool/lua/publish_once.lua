-- Each job's first final result, once: stored under Celery's result key (SET NX, with a
-- TTL), published for AsyncResult.get() subscribers, appended to the results stream.
-- A later result for the same job changes nothing.
-- KEYS: n result keys, then the results stream. ARGV: ttl, stream maxlen, then per result:
-- meta json, job id, status, result json. Returns 1 (stored) or 0 (duplicate) per result.
local n = #KEYS - 1
local stream = KEYS[n + 1]
local out = {}
for i = 1, n do
  local a = 2 + 4 * (i - 1)
  if redis.call('SET', KEYS[i], ARGV[a + 1], 'NX', 'EX', ARGV[1]) then
    redis.call('PUBLISH', KEYS[i], ARGV[a + 1])
    redis.call('XADD', stream, 'MAXLEN', '~', ARGV[2], '*',
               'job_id', ARGV[a + 2], 'status', ARGV[a + 3], 'result', ARGV[a + 4])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
