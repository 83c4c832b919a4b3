"""Another revision of this repository, exported to a folder, so a benchmark can run it beside the
working tree in the same run (`python -m devtools.bench --against main`)."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

from worker.settings import REPO_ROOT


def export(rev: str, into: Path) -> Path:
    """The tracked files of `rev` (a commit, branch or tag) in `into/<rev>`; returns that folder."""
    commit = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=REPO_ROOT, check=True,
                            capture_output=True, text=True).stdout.strip()
    folder = into / commit[:12]
    if not folder.exists():
        archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=REPO_ROOT, check=True,
                                 capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(folder, filter="data")
    return folder
