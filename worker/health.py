"""Health check of a worker node (docker compose runs it): its consumer serves metrics and is ready.

    python -m worker.health              # exit 0: ready; 1: not ready or not answering
    python -m worker.health --port 9541

Ready means the node's consumer process answers on TAGGER_METRICS_PORT and reports
`tagger_worker_ready 1`: it consumes the queue and its pool processes have loaded the model.
"""

from __future__ import annotations

import argparse
import sys
import urllib.request

READY_LINE = "tagger_worker_ready 1.0"


def check(port: int, host: str = "127.0.0.1", timeout: float = 3.0) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout) as response:
            text = response.read().decode("utf-8", "replace")
    except OSError as exc:
        return False, f"no metrics on {host}:{port}: {exc}"
    if READY_LINE in text.splitlines():
        return True, "ready"
    return False, "answering, not ready (starting, or the model is not loaded)"


def main(argv: list[str] | None = None) -> int:
    from worker.settings import WorkerSettings

    p = argparse.ArgumentParser(prog="python -m worker.health", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=None, help="metrics port (default: $TAGGER_METRICS_PORT or 9541)")
    p.add_argument("--host", default="127.0.0.1")
    args = p.parse_args(argv)
    ok, why = check(args.port or WorkerSettings().metrics_port, args.host)
    print(why)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
