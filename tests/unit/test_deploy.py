"""The deployment files name the real entry points (docker is not run here: no engine on CI)."""

from __future__ import annotations

from worker.settings import REPO_ROOT as ROOT


def test_docker_compose_matches_the_real_entry_points() -> None:
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    redis_svc, worker_svc = services["redis"], services["worker"]
    assert "healthcheck" in redis_svc and "redis-cli" in " ".join(redis_svc["healthcheck"]["test"])
    redis_cmd = redis_svc["command"]
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"  # queued jobs survive a restart
    assert redis_cmd[redis_cmd.index("--maxmemory-policy") + 1] == "noeviction"  # workers refuse anything else
    command = worker_svc["command"] if isinstance(worker_svc["command"], list) else worker_svc["command"].split()
    assert command[:4] == ["celery", "-A", "worker", "worker"]
    env = worker_svc["environment"]
    env = dict(e.split("=", 1) for e in env) if isinstance(env, list) else env
    assert env["REDIS_URL"].startswith("redis://redis:6379")
    assert "container_name" not in worker_svc and "ports" not in worker_svc  # so --scale works
    assert worker_svc["depends_on"]["redis"]["condition"] == "service_healthy"
    # the worker's health check asks its consumer process, on the port its settings read
    assert worker_svc["healthcheck"]["test"] == ["CMD", "python", "-m", "worker.health"]
    from worker.settings import WorkerSettings

    port = WorkerSettings.model_validate({"metrics_port": env["TAGGER_METRICS_PORT"]}).metrics_port
    assert port == WorkerSettings().metrics_port > 0  # the default, which worker.health reads too
    assert services["producer"]["depends_on"]["worker"]["condition"] == "service_healthy"
    producer_cmd = services["producer"]["command"]
    producer_cmd = producer_cmd if isinstance(producer_cmd, list) else producer_cmd.split()
    assert producer_cmd[:3] == ["python", "-m", "producer"]
    assert (ROOT / "Dockerfile").exists()
    # the module the worker command names really is a Celery app
    import worker

    assert worker.app.main == "tagger"
