"""Running a Hypothesis fuzz test for a time budget: its seed corpus first, then rounds of new inputs.

    TAGGER_FUZZ_SECONDS=600 python -m pytest tests/integration/test_fuzz_queue.py   # a longer run
    TAGGER_FUZZ_EXAMPLES=20000 python -m pytest tests/unit/test_fuzz_preprocess.py   # a fixed number of inputs

CI runs each fuzz test for its default budget (about a minute in all). A failure prints the
shrunk input and a `@reproduce_failure` line to replay it.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Sequence

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis.strategies import SearchStrategy

SECONDS_ENV = "TAGGER_FUZZ_SECONDS"
EXAMPLES_ENV = "TAGGER_FUZZ_EXAMPLES"
ROUND = 50  # new inputs per round; the budget is checked between rounds


def fuzz(body: Callable[[Any], None], inputs: SearchStrategy[Any], seeds: Sequence[Any],
         default_seconds: float) -> int:
    """Run `body` on each seed, then on new `inputs` for `default_seconds` ($TAGGER_FUZZ_SECONDS), or
    on $TAGGER_FUZZ_EXAMPLES new inputs when that is set. Returns how many new inputs were asked for."""
    seconds = float(os.environ.get(SECONDS_ENV) or default_seconds)
    wanted = int(os.environ.get(EXAMPLES_ENV) or 0)
    common = dict(deadline=None, suppress_health_check=list(HealthCheck), print_blob=True, database=None)
    seeded = given(inputs)(body)
    for seed in seeds:
        seeded = example(seed)(seeded)
    settings(max_examples=1, phases=[Phase.explicit], **common)(seeded)()
    started, tried = time.monotonic(), 0
    while (tried < wanted) if wanted else (time.monotonic() - started < seconds):
        n = min(ROUND, wanted - tried) if wanted else ROUND
        settings(max_examples=n, phases=[Phase.generate, Phase.shrink], **common)(given(inputs)(body))()
        tried += n
    return tried
