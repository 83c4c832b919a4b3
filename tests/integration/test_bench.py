"""The benchmark's --quick path end to end (with --events): report structure, and every submitted job got a result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from worker.settings import REPO_ROOT as ROOT


def test_quick_benchmark_runs_end_to_end(tmp_path: Path, data_root: Path) -> None:
    out = tmp_path / "bench"
    run = subprocess.run([sys.executable, "-m", "devtools.bench", "--quick", "--jobs", "400", "--open-loop-seconds",
                          "1", "--photos", "60", "--events", "--out", str(out), "--data-dir", str(data_root)], cwd=ROOT, capture_output=True,
                         text=True, timeout=600, env={**os.environ})
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((out / "bench.json").read_text())
    for name in ("bench.md", "throughput.png", "latency.png"):
        assert (out / name).stat().st_size > 0
    assert set(report["ceiling"]["images_per_second"]) >= {"1", "256"}
    assert report["naive"]["end_to_end_images_per_second"] > 0 and report["naive"]["drain_images_per_second"] > 0
    service = report["service"]
    for phase in ("bulk", "single", "single_drain"):
        assert service[phase]["missing"] == 0 and service[phase]["images_per_second"] > 0, phase
    assert service["bulk"]["tagged"] == service["bulk"]["jobs"] == 400
    for loop in ("bulk", "single"):  # --events: the same closed loops with task events on
        assert service["events_on"][loop]["missing"] == 0 and service["events_on"][f"{loop}_ratio"] > 0, loop
    assert len(service["open_loop"]) == 4
    for level in service["open_loop"]:
        assert level["missing"] == 0 and level["jobs"] > 0
        assert level["latency_ms"]["p50"] <= level["latency_ms"]["p95"] <= level["latency_ms"]["p99"]
    assert all(mb > 0 for mb in service["peak_rss_mb"]["pool"])
    assert "| service, bulk" in (out / "bench.md").read_text()
    photos = report["photos"]
    for variant in ("mix_bytes", "mix_urls", "jpeg_bytes", "mix_bytes_no_colours", "jpeg_bytes_no_colours",
                    "mix_bytes_colours_on"):
        loop = photos["end_to_end"][variant]
        assert loop["missing"] == 0 and loop["tagged"] == loop["jobs"] > 0, variant
    assert photos["end_to_end"]["mix_urls"]["time_per_image_us"]["pool: fetch"] > 0
    memory = photos["redis_bytes_per_queued_job"]
    assert memory["per_file_byte_this"] <= 1.6 and memory["url_job_this"] < 1024
    assert photos["wait"]["this"]["jobs"] == 400 and photos["wait"]["this"]["redis_cpu_us_per_job"] > 0
    assert photos["wait"]["private_redis"] is True  # the broker CPU is the wait's own
    assert "| photo mix by URL" in (out / "bench.md").read_text()
    assert "Naming colours costs" in (out / "bench.md").read_text()
    assert "| service with task events on (-E), bulk" in (out / "bench.md").read_text()
    from ml.checkpoint import load
    from worker.settings import DEFAULT_CHECKPOINT, DEFAULT_MODEL

    header = (out / "bench.md").read_text().splitlines()[0]
    # the command that reruns it, without this machine's data path
    assert report["config"]["command"] == ("python -m devtools.bench --quick --out bench --jobs 400 "
                                           "--open-loop-seconds 1.0 --photos 60 --events")
    assert f"Command: `{report['config']['command']}`" in header
    # the checkpoint served, not only its architecture (compact_ens and compact share one), and its version
    assert f"model `models/{DEFAULT_MODEL}/model.pt`" in header and load(DEFAULT_CHECKPOINT).version in header
