"""The repository itself: no file carries an unresolved merge (its markers would pass a docs-only change)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARKERS = ("<<<<<<< ", "=======\n", ">>>>>>> ")


def tracked_text_files() -> list[Path]:
    try:
        names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / n for n in names.splitlines() if Path(n).suffix in {".py", ".md", ".toml", ".sh", ".txt", ""}]


def test_no_file_holds_merge_conflict_markers():
    found = [f"{path.relative_to(ROOT)}:{number}" for path in tracked_text_files() if path.is_file()
             for number, line in enumerate(path.read_text(errors="replace").splitlines(keepends=True), 1)
             if line.startswith(MARKERS)]
    assert not found, f"unresolved merge conflict markers at {', '.join(found)}"
