"""The worker's settings: one typed object from the environment (TAGGER_*, and REDIS_URL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from wire.settings import ServiceSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "models"
DEFAULT_MODEL = "compact112_kd2"  # the folder under the models directory that a worker serves by default
DEFAULT_CHECKPOINT = MODELS_DIR / DEFAULT_MODEL / "model.pt"


class WorkerSettings(ServiceSettings):
    models_dir: Path = Field(MODELS_DIR, description="checkpoints live here; `control reload_model` loads "
                             "nothing outside it (a path relative to it, or an absolute path inside it)")
    checkpoint: Path = Field(DEFAULT_CHECKPOINT, description=f"model.pt written by ml.train (default: "
                             f"<models_dir>/{DEFAULT_MODEL}/model.pt)")
    max_batch_size: int = Field(256, ge=1, le=8192, description="jobs per forward pass, at most")
    max_batch_wait_ms: float = Field(10.0, ge=0, le=10_000,
                                     description="a batch closes when its oldest job has waited this long")
    torch_threads: int = Field(1, ge=1, description="torch threads per worker process")
    device: Literal["cpu", "cuda", "auto"] = Field("cpu", description="cpu, cuda, or auto (cuda when available)")
    max_attempts: int = Field(3, ge=1, description="deliveries of a job before it is dead-lettered")
    visibility_timeout_s: int = Field(
        300, ge=1, description="an unacknowledged message is redelivered after this long (worker lost)")
    restore_interval_s: int = Field(10, ge=1, description="how often a worker looks for such messages")
    max_image_pixels: int = Field(40_000_000, ge=1, description="largest accepted width x height (a JPEG: "
                                  "decoded at 1/2-1/8 scale)")
    max_image_pixels_png: int = Field(16_000_000, ge=1, description="largest width x height of a PNG, which has "
                                      "no reduced decode (docs/decoders.md: 0.2 s and 92 MB at 16 M)")
    max_image_pixels_webp: int = Field(16_000_000, ge=1, description="largest width x height of a WebP, which "
                                       "has no reduced decode (a 1.6 KB lossless WebP can claim 40 M)")
    colours: bool = Field(True, description="name each item's dominant colours (a JPEG is then decoded in colour: "
                          "docs/colour.md gives the cost)")
    allow_eviction: bool = Field(
        False, description="start even when Redis's maxmemory-policy may evict keys (queued jobs, unread results "
        "may vanish); without it a worker refuses such a Redis")
    url_allowlist: str = Field(
        "", description="comma-separated hosts whose image URLs are fetched: a name (cdn.example.com), a suffix "
        "(.example.com: the domain and its subdomains), an address or a network (10.1.0.0/16). Empty: URL jobs "
        "fail with url_not_allowed. Private, loopback and link-local addresses are refused unless that very "
        "host (name or address, as the URL writes it) is listed, or a listed network holds the address")
    fetch_connect_timeout_s: float = Field(3.0, gt=0, description="connecting to an image URL's host")
    fetch_read_timeout_s: float = Field(5.0, gt=0, description="longest silence while reading an image URL")
    fetch_deadline_s: float = Field(15.0, gt=0, description="a URL job's whole fetch, retries and redirects included")
    fetch_retries: int = Field(2, ge=0, le=10, description="retries of a URL after a timeout or a 5xx, with backoff")
    fetch_max_redirects: int = Field(3, ge=0, le=10, description="redirects followed per URL, each checked again")
    fetch_threads: int = Field(16, ge=1, le=256, description="concurrent URL fetches per pool process")
    metrics_port: int = Field(9541, ge=0, le=65535, description="Prometheus metrics of this node on "
                              "http://<host>:<port>/metrics, served by its consumer process (0: off)")
    review_threshold: float | None = Field(
        None, ge=0, le=1, description="tags below this confidence get needs_review; unset: the threshold "
        "ml.photo_eval chose for the served checkpoint (97% precision of the unflagged tags on photo-like "
        "validation images, in photo_metrics.json beside it), else 0.5")

    @model_validator(mode="before")
    @classmethod
    def _checkpoint_follows_models_dir(cls, data: Any) -> Any:
        # An image that keeps its models elsewhere sets TAGGER_MODELS_DIR alone.
        if isinstance(data, dict) and data.get("models_dir") and not data.get("checkpoint"):
            data = {**data, "checkpoint": Path(data["models_dir"]) / DEFAULT_MODEL / "model.pt"}
        return data

    def allowed_checkpoint(self, path: str | Path) -> Path:
        """`path` (relative to models_dir, or absolute) resolved, if it is a file inside models_dir.

        `control reload_model` takes a path from anyone who can write to Redis: it may load
        only what the operator put in the models directory (no `..`, no symlink out).
        """
        root = Path(self.models_dir).expanduser().resolve()
        resolved = (root / Path(path).expanduser()).resolve()
        if not resolved.is_relative_to(root):
            raise ValueError(f"{path}: outside the models directory {root} (TAGGER_MODELS_DIR)")
        if not resolved.is_file():
            raise ValueError(f"{resolved}: no such checkpoint file")
        return resolved

    @field_validator("url_allowlist")
    @classmethod
    def _allowlist_parses(cls, v: str) -> str:
        # at start, with one clear line, not in every batch of a node that is already running
        from worker.pool.fetch import Allowlist

        Allowlist(v)
        return v

    @model_validator(mode="after")
    def _visibility_covers_a_batch(self) -> "WorkerSettings":
        # A message waits in the worker's buffer (max wait) and then runs; if the
        # visibility timeout were shorter, a healthy worker's jobs would be redelivered.
        if self.visibility_timeout_s * 1000 < 2 * self.max_batch_wait_ms:
            raise ValueError("visibility_timeout_s must be well over max_batch_wait_ms")
        return self

    def prefetch_messages(self, concurrency: int) -> int:
        """Unacknowledged messages a worker node may hold: a full batch per process, plus one filling."""
        return self.max_batch_size * (concurrency + 1)
