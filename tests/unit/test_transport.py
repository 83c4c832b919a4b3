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
