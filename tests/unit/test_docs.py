"""The docs stay true: the settings reference matches the classes, links resolve, every documented
`python -m` command exists and answers --help, and no path of a build machine is written down."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from worker.settings import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def test_the_settings_reference_is_generated_from_the_settings_classes() -> None:
    from devtools.settings_doc import DOC, render

    assert DOC.read_text() == render(), "run: python -m devtools.settings_doc --write"


def test_the_readme_is_a_front_door() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 150
    for heading in ("## Two commands", "## Use it", "## Layout", "## Headline figures", "## Docs"):
        assert heading in readme
    assert "make demo" in readme and "make test" in readme


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_link_resolves(doc) -> None:
    for target in re.findall(r"\]\(([^)#]+?)(?:#[^)]*)?\)", doc.read_text()):
        if not target.startswith("http"):
            assert (doc.parent / target).exists(), f"{doc.name}: {target}"


def documented_commands() -> list[tuple[str, ...]]:
    """`python -m <module> [subcommand]` as the docs write them, each once."""
    found: set[tuple[str, ...]] = set()
    for doc in DOCS:
        for module, rest in re.findall(r"python -m ([\w.]+)([^\n`]*)", doc.read_text()):
            sub = re.match(r"\s+([a-z][\w-]*)", rest) if module == "producer" else None
            found.add((module, sub.group(1)) if sub else (module,))
    return sorted(found)


@pytest.mark.parametrize("command", documented_commands(), ids=" ".join)
def test_every_documented_command_answers_help(command: tuple[str, ...]) -> None:
    out = subprocess.run([sys.executable, "-m", *command, "--help"], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "usage:" in out.stdout, out.stderr[-2000:]


# Written in two pieces, so that this file does not name them itself.
MACHINE_PATHS = ("/wo" + "rk/", "../sha" + "red/data")
ALLOWED = {"Makefile": MACHINE_PATHS[1]}  # the Makefile may look beside the checkout, where CI keeps the data


def test_no_path_of_a_build_machine_in_tracked_files() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.split()
    offenders = []
    for name in tracked:
        path = REPO_ROOT / name
        if path.suffix in {".pt", ".png", ".jpg", ".jpeg", ".webp"} or not path.is_file():
            continue
        text = path.read_text(errors="ignore")
        offenders += [(name, p) for p in MACHINE_PATHS if p in text and ALLOWED.get(name) != p]
    assert offenders == []
