"""worker.consumer.memory_policy: which broker memory policies a worker refuses, and the line it says."""

from __future__ import annotations

import pytest

from worker.consumer.memory_policy import eviction_problem


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-ttl"])
def test_a_policy_that_evicts_is_refused_in_one_line(policy: str) -> None:
    problem = eviction_problem({"maxmemory_policy": policy, "maxmemory": 1_048_576})
    assert problem is not None and "\n" not in problem
    assert policy in problem and "1,048,576 bytes" in problem and "TAGGER_ALLOW_EVICTION=1" in problem


def test_noeviction_passes_and_an_unlimited_redis_is_still_refused_an_evicting_policy() -> None:
    assert eviction_problem({"maxmemory_policy": "noeviction", "maxmemory": 1_048_576}) is None
    assert eviction_problem({"maxmemory": 0}) is None  # a Redis that does not say (INFO without the field)
    assert "CONFIG SET can add one" in (eviction_problem({"maxmemory_policy": "allkeys-lru", "maxmemory": 0}) or "")
