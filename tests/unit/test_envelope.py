"""wire.envelope: the job count of any message, from its header or its body, never raises."""

from __future__ import annotations

from wire.envelope import count_jobs


def test_the_job_count_of_any_message_is_1_to_cap_and_never_raises() -> None:
    body = b'[[[{"job_id":"a","product_id":"p"},{"job_id":"b","product_id":"q \\"product_id\\""}]],{},{}]'
    assert count_jobs({}, body, "n", cap=100) == 2  # counted in the body; an escaped quote is not a key
    assert count_jobs({"n": 2}, body, "n", cap=100) == 2  # the header, when it is a positive integer ...
    assert count_jobs({"n": 10**12}, body, "n", cap=100) == len(body) // 32  # ... the body has room for
    assert count_jobs({"n": 10**12}, body * 100, "n", cap=100) == 100
    for header in (float("inf"), float("nan"), 1e400, -3, 0, "64", [64], None, True):
        assert count_jobs({"n": header}, body, "n", cap=100) == 2, header
    for headers, raw in (([], b"[[[]],{},{}]"), ("x", None), ({}, 12345), ({}, ""), ({}, "[" * 10_000)):
        assert count_jobs(headers, raw, "n", cap=100) == 1
