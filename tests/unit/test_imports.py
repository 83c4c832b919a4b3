"""Who imports what: the client package and the contract never need torch, numpy or Pillow, and
the worker's consumer process never loads torch. Every module is walked, not a hand-picked list."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import producer
import wire
import worker.consumer
from worker.settings import REPO_ROOT

HEAVY = ("torch", "numpy", "PIL")
# Modules of the client package that use Pillow for a documented optional feature.
OPTIONAL_PILLOW = {"producer.shrink": "shrinking large photos before sending them (pip install pillow)"}


def modules(package) -> list[str]:
    """Every module of a package (a `__main__` runs its command when imported: left out)."""
    found = [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    return [package.__name__] + [m for m in found if not m.endswith(".__main__")]


def loaded_after_import(names: list[str]) -> set[str]:
    """The heavy top-level packages a fresh interpreter holds after importing `names`."""
    code = (f"import importlib, sys\nfor n in {names!r}: importlib.import_module(n)\n"
            f"print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", modules(producer) + modules(wire))
def test_every_client_and_contract_module_imports_without_torch_numpy_or_pillow(module: str) -> None:
    allowed = {"PIL"} if module in OPTIONAL_PILLOW else set()
    assert loaded_after_import([module]) <= allowed, module


def test_the_worker_consumer_process_never_loads_torch_numpy_or_pillow() -> None:
    consumer_side = ["worker", "worker.app", "worker.tasks", "worker.control", "worker.pool"] + modules(worker.consumer)
    assert loaded_after_import(consumer_side) == set()


def test_the_worker_imports_the_contract_not_the_client() -> None:
    worker_modules = [m.name for m in pkgutil.walk_packages([str(REPO_ROOT / "worker")], "worker.")]
    code = ("import importlib, sys\n"
            f"for n in {worker_modules!r}: importlib.import_module(n)\n"
            "print(' '.join(sorted(m for m in sys.modules if m == 'producer' or m.startswith('producer.'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == []
