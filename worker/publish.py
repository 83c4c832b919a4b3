"""Results out of a pool process: Celery result backend + results stream, idempotent per job id.

One Lua script per result, all of a batch's results in one pipeline (one round trip):
the first final result for a job id is stored and streamed; any later one (a job
processed twice after a redelivery, or submitted twice) changes nothing and is
counted as a duplicate.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
import redis

from producer.client import connect
from producer.keys import attempts_key, result_key
from producer.messages import Job, TagResult
from producer.settings import ServiceSettings

# KEYS: result key, results stream. ARGV: ttl, meta json, stream maxlen, job id, status, result json.
PUBLISH_ONCE = """
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ARGV[1]) then
  redis.call('PUBLISH', KEYS[1], ARGV[2])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'job_id', ARGV[4], 'status', ARGV[5], 'result', ARGV[6])
  return 1
end
return 0
"""


class Publisher:
    def __init__(self, settings: ServiceSettings, client: redis.Redis | None = None) -> None:
        self.settings = settings
        self.redis = client or connect(settings.redis_url)
        self._publish_once = self.redis.register_script(PUBLISH_ONCE)

    def count_attempts(self, job_ids: list[str]) -> list[tuple[int, bool]]:
        """(deliveries so far including this one, whether a final result exists) per job.

        Redis keeps no delivery counter, so the worker keeps one per job id.
        """
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.incr(attempts_key(job_id))
            pipe.expire(attempts_key(job_id), self.settings.result_ttl_s)
            pipe.exists(result_key(job_id))
        replies = pipe.execute()
        return [(int(replies[i]), bool(replies[i + 2])) for i in range(0, len(replies), 3)]

    def publish(self, results: list[TagResult]) -> list[bool]:
        """Store and stream each result once; per result, whether it was new (else a duplicate)."""
        if not results:
            return []
        s = self.settings
        done = _iso_now()
        pipe = self.redis.pipeline(transaction=False)
        for r in results:
            payload = r.model_dump(mode="json")
            meta = json.dumps({"status": "SUCCESS", "result": payload, "traceback": None, "children": [],
                               "date_done": done, "task_id": r.job_id}, separators=(",", ":"))
            self._publish_once(keys=[result_key(r.job_id), s.results_stream],
                               args=[s.result_ttl_s, meta, s.stream_maxlen, r.job_id, r.status.value,
                                     json.dumps(payload, separators=(",", ":"))],
                               client=pipe)
        return [bool(x) for x in pipe.execute()]

    def dead_letter(self, job: Job, reason: str, attempts: int) -> None:
        """Keep the whole job (image included) so an operator can inspect and replay it."""
        self.redis.xadd(self.settings.dead_letter_stream,
                        {"job": job.model_dump_json(), "reason": reason, "attempts": attempts,
                         "failed_at": time.time()},
                        maxlen=self.settings.dead_letter_maxlen, approximate=True)


def _iso_now() -> str:
    return datetime.now(timezone.utc).isoformat()
