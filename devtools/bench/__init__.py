"""Benchmarks you can rerun: `python -m devtools.bench` (the service through Redis, against
baselines), `devtools.bench.model_speed` (the model in process), `devtools.bench.preprocess_speed`."""
