"""worker.consumer.transport: any queue item decodes to an envelope or a reason, never an exception."""

from __future__ import annotations


def test_queue_items_decode_to_an_envelope_or_a_reason_whatever_the_bytes() -> None:
    from wire.envelope import task_envelope
    from worker.consumer.transport import decode_item

    good = task_envelope("tagger.tag", "tagger", []).encode()
    assert decode_item(good)[1] == "" and decode_item(good)[0]["headers"]["task"] == "tagger.tag"
    assert decode_item(b"[" * 100_000 + b"]" * 100_000)[1].endswith("nested too deep")
    assert decode_item(b"\xff\xfe")[1].startswith("not JSON")
    for item in (b"{}", b"[]", b"12", b'{"body": 1}', b'{"body": "", "properties": [], "headers": {}}'):
        assert decode_item(item) == (None, "not a message envelope"), item
    numbered = good.replace(b'"delivery_tag":"', b'"delivery_tag":0,"x":"')
    assert decode_item(numbered) == (None, "not a message envelope")  # a tag kombu could not find again
    assert decode_item(b"")[1].startswith("not JSON")  # an empty item is junk too, not "no item" (found by fuzzing)
    no_task = good.replace(b'"task":"tagger.tag",', b"")
    assert decode_item(no_task) == (None, "not a task message: no task header")  # Celery would drop it


def test_take_more_records_each_message_under_the_tag_its_properties_hold(redis_server) -> None:
    """The script reads the tag from the item's tail (no JSON decode in Redis); an item whose tail
    names another tag than its properties is caught by the worker, which compares the two."""
    import json

    from kombu.utils.json import dumps

    from wire.envelope import task_envelope
    from worker.consumer.transport import TAKE_MORE, decode_item

    r = redis_server.client()
    r.flushall()
    ours = task_envelope("tagger.tag", "q", [{"job_id": "j", "image_b64": "QUJD" * 1000}])
    kombus = dumps(json.loads(ours))  # kombu's own separators, spaces included
    fake = json.loads(ours)
    fake = {k: v for k, v in fake.items() if k != "headers"} | {"headers": {"task": "tagger.tag", "delivery_tag": "not-the-tag"}}
    no_tag_in_tail = json.loads(ours)
    no_tag_in_tail["headers"]["padding"] = "x" * 2000  # properties first, then 2 KB: the tail has no tag
    no_tag_in_tail = {"properties": no_tag_in_tail.pop("properties"), **no_tag_in_tail}
    items = [ours, kombus, json.dumps(fake), json.dumps(no_tag_in_tail), "not an envelope", ours]
    for item in items:
        r.lpush("q", item)
    got = r.eval(TAKE_MORE, 3, "q", "unacked", "unacked_index", 10, "q")
    pairs = list(zip(got[::2], [t.decode() for t in got[1::2]]))
    assert len(pairs) == 4 and r.lrange("q", 0, -1) == [ours.encode(), b"not an envelope"]  # put back: stops there
    for raw, tag in pairs:
        message, reason = decode_item(raw)
        assert reason == "" and r.hexists("unacked", tag)
        assert (message["properties"]["delivery_tag"] == tag) == (tag != "not-the-tag")
