"""A run's output files as one unit: they appear together or not at all.

Each file being atomic is not enough: a run killed between two files would leave a new risk
list beside an old manifest. So a run writes every file into a fresh folder inside the hidden
`.<out>.sets/` beside the output path, the manifest (with each file's sha256) last, and then
switches the output path, a symbolic link, to that folder with one atomic rename. Readers of
`<out>/risk_list.csv` see the complete old set or the complete new one; `verify` checks a set
against its manifest.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from churnlens.data.io import file_sha256, umask, writing
from churnlens.errors import ChurnlensError

MANIFEST = "manifest.json"


def _take_over(out: Path) -> None:
    """Check `out` can hold a set; a plain folder becomes a link to a set folder."""
    if out.is_symlink():
        return
    if out.is_file():
        raise ChurnlensError(f"--out {out} is a file; give a folder path for the outputs")
    if out.is_dir():
        if any(out.iterdir()) and not (out / MANIFEST).is_file():
            raise ChurnlensError(
                f"--out {out} is a folder that holds other files; give a new or empty folder"
            )
        # a plain folder (an empty one, or a set from before output sets): taken over once
        aside = _sets(out) / f"set-{uuid.uuid4().hex[:12]}"
        aside.parent.mkdir(exist_ok=True)
        os.rename(out, aside)
        os.symlink(f"{aside.parent.name}/{aside.name}", out)


def publish(out: Path, files: dict[str, Callable[[Path], object]], manifest: dict) -> dict:
    """Write `files` (name -> writer of that path) and then `manifest` (with `files`: each
    file's sha256) as one set at `out`; return the manifest. On any failure the previous set
    stays as it was and nothing new is left behind."""
    with writing(out, "outputs to "):
        _sets(out).mkdir(parents=True, exist_ok=True)
        _take_over(out)
        staging = Path(tempfile.mkdtemp(prefix="set-", dir=_sets(out)))
    with writing(out, "outputs to "):
        manifest = _write_set(out, staging, files, manifest)
    _clean(out, keep=staging)
    return manifest


def _write_set(out: Path, staging: Path, files: dict, manifest: dict) -> dict:
    """Write the set into `staging` and switch `out` to it; on any failure remove it."""
    try:
        for name, write in files.items():
            write(staging / name)
        manifest = {**manifest, "files": {name: file_sha256(staging / name) for name in files}}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        staging.chmod(0o777 & ~umask())  # mkdtemp makes 0700 folders
        for path in [*staging.iterdir(), staging]:
            descriptor = os.open(path, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        link = out.parent / f".{out.name}.link-{uuid.uuid4().hex[:12]}"
        os.symlink(f"{staging.parent.name}/{staging.name}", link)
        os.replace(link, out)  # the switch: one atomic rename
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _sets(out: Path) -> Path:
    """The hidden folder that holds `out`'s sets: the current one and any being written."""
    return out.parent / f".{out.name}.sets"


def _clean(out: Path, keep: Path) -> None:
    """Remove the previous set and whatever runs killed before their switch left behind
    (one scorer at a time per output path); nothing of another output path is touched."""
    for stale in _sets(out).iterdir():
        if stale != keep:
            shutil.rmtree(stale, ignore_errors=True)
    links = re.compile(re.escape(f".{out.name}.link-") + "[0-9a-f]{12}")
    for stale in out.parent.iterdir():
        if links.fullmatch(stale.name):
            stale.unlink(missing_ok=True)


def verify(out: Path) -> list[str]:
    """Problems of the set at `out` against its manifest (empty: the set is intact)."""
    manifest_path = out / MANIFEST
    if not manifest_path.is_file():
        return [f"{out}: no {MANIFEST}"]
    try:
        recorded = json.loads(manifest_path.read_text())["files"]
        recorded = {str(name): str(digest) for name, digest in recorded.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return [f"{manifest_path}: not a churnlens manifest"]
    problems = []
    for name, digest in sorted(recorded.items()):
        path = out / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif file_sha256(path) != digest:
            problems.append(f"{name}: sha256 differs from the manifest")
    extra = {p.name for p in out.iterdir()} - set(recorded) - {MANIFEST}
    problems += [f"{name}: not in the manifest" for name in sorted(extra)]
    return problems
