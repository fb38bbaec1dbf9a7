"""A scoring run's files form one set: they appear together or not at all, and verify."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from churnlens.cli import app
from churnlens.data.io import write_atomic, write_csv, write_parquet
from churnlens.data.output_set import publish, verify
from churnlens.errors import ChurnlensError

runner = CliRunner()


def writers(text: str) -> dict:
    return {name: (lambda path, n=name: path.write_text(f"{n}:{text}")) for name in ("a", "b")}


def test_publish_switches_the_whole_set_and_leaves_nothing_behind(tmp_path):
    out = tmp_path / "scores"
    publish(out, writers("old"), {"run": 1})
    first = os.readlink(out)
    manifest = publish(out, writers("new"), {"run": 2})
    assert out.is_symlink() and os.readlink(out) != first
    assert (out / "a").read_text() == "a:new" and verify(out) == []
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == [".scores.sets", "scores"]
    assert [f".scores.sets/{p.name}" for p in (tmp_path / ".scores.sets").iterdir()] == [
        os.readlink(out)
    ]


def test_a_neighbouring_output_path_is_left_alone(tmp_path):
    publish(tmp_path / "scores.prev", writers("prev"), {})
    publish(tmp_path / "scores", writers("x"), {})
    publish(tmp_path / "scores", writers("y"), {})
    assert (tmp_path / "scores.prev" / "a").read_text() == "a:prev"
    assert verify(tmp_path / "scores.prev") == [] and verify(tmp_path / "scores") == []


def test_verify_finds_a_changed_missing_or_extra_file(tmp_path):
    out = tmp_path / "scores"
    publish(out, writers("x"), {})
    (out / "a").write_text("tampered")
    (out / "b").unlink()
    (out / "c").write_text("stray")
    assert verify(out) == [
        "a: sha256 differs from the manifest",
        "b: missing",
        "c: not in the manifest",
    ]
    result = runner.invoke(app, ["verify", str(out)])
    assert result.exit_code == 2 and "a: sha256 differs" in result.output


def test_out_naming_a_file_or_a_foreign_folder_is_refused(tmp_path):
    (tmp_path / "file").write_text("mine")
    with pytest.raises(ChurnlensError, match="is a file"):
        publish(tmp_path / "file", writers("x"), {})
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("mine")
    with pytest.raises(ChurnlensError, match="holds other files"):
        publish(tmp_path / "folder", writers("x"), {})
    assert (tmp_path / "file").read_text() == "mine"
    assert [p.name for p in (tmp_path / "folder").iterdir()] == ["notes.txt"]


@contextlib.contextmanager
def read_only(folder: Path):
    """A folder nobody can write into, root included (root ignores mode bits: chattr +i)."""
    folder.chmod(0o555)
    immutable = os.geteuid() == 0
    if immutable:
        subprocess.run(["chattr", "+i", str(folder)], check=True)
    try:
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def test_a_read_only_folder_is_a_clear_error_and_keeps_the_set(tmp_path):
    out = tmp_path / "locked" / "scores"
    publish(out, writers("old"), {})
    with read_only(tmp_path / "locked"):
        with pytest.raises(ChurnlensError, match="cannot write outputs .*ermitted"):
            publish(out, writers("new"), {})
    assert (out / "a").read_text() == "a:old" and verify(out) == []


def test_a_failing_writer_keeps_the_previous_set(tmp_path):
    out = tmp_path / "scores"
    publish(out, writers("old"), {})

    def full(path):
        raise OSError(28, "No space left on device")

    with pytest.raises(ChurnlensError, match="No space left on device"):
        publish(out, {"a": full}, {})
    assert (out / "a").read_text() == "a:old" and verify(out) == []
    assert len(list(tmp_path.iterdir())) == 2


def test_a_write_error_names_the_file_and_leaves_nothing_half_written(tmp_path):
    """A full disk (/dev/full answers every write with ENOSPC), a folder made read-only after
    the checks, a folder replaced by a file mid-write: exit 2 naming the path, the earlier
    file intact, no temp file left."""
    frame = pd.DataFrame({"customer_id": ["a", "b"], "p": [0.1, 0.2]})
    folder = tmp_path / "out"
    path = write_csv(frame, folder / "list.csv")
    before = path.read_bytes()

    def onto_a_full_disk(tmp: Path) -> None:
        tmp.unlink()
        tmp.symlink_to("/dev/full")
        frame.to_parquet(tmp)

    with pytest.raises(ChurnlensError, match=r"cannot write .*list.csv: No space left"):
        write_atomic(path, onto_a_full_disk)
    with read_only(folder), pytest.raises(ChurnlensError, match=r"cannot write .*list.csv: .*ermi"):
        write_parquet(frame, path)
    assert path.read_bytes() == before and sorted(folder.iterdir()) == [path]

    def then_the_folder_goes(tmp: Path) -> None:
        tmp.write_text("half")
        shutil.rmtree(folder)
        folder.write_text("now a file")

    with pytest.raises(ChurnlensError, match=r"cannot write .*list.csv: Not a directory"):
        write_atomic(path, then_the_folder_goes)
    assert sorted(tmp_path.iterdir()) == [folder] and folder.read_text() == "now a file"
    os.mkfifo(tmp_path / "pipe")  # as /dev/null, run as root: the rename would replace it
    with pytest.raises(ChurnlensError, match="pipe is a device, pipe or socket, not a file"):
        write_csv(frame, tmp_path / "pipe")
    assert stat.S_ISFIFO((tmp_path / "pipe").stat().st_mode)


# --- kill -9 at every file operation of a real `churnlens score` ------------------------------

DRIVER = """
import os, signal, sys
kill_at, seen = int(sys.argv[1]), [0]
def counted(function):
    def run(*args, **kwargs):
        seen[0] += 1
        if seen[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return function(*args, **kwargs)
    return run
for name in ("replace", "rename", "symlink", "fsync"):
    setattr(os, name, counted(getattr(os, name)))
import atexit
atexit.register(lambda: print(f"file operations: {seen[0]}"))
from churnlens.cli import app
app(sys.argv[2:], standalone_mode=True)
"""


def test_kill_during_the_write_phase_leaves_the_old_or_the_new_set(
    trained_shop, exported_model, tmp_path
):
    _, path, result, _ = trained_shop
    out = tmp_path / "scores"
    as_of = f"{result.split.test:%Y-%m-%d}"

    def run(kill_at: int, budget: int) -> subprocess.CompletedProcess:
        args = ["-q", "score", "-c", path, "--as-of", as_of, "--model", exported_model]
        args += ["--out", out, "--budget", budget]
        return subprocess.run(
            [sys.executable, "-c", DRIVER, str(kill_at), *map(str, args)],
            capture_output=True,
            text=True,
        )

    first = run(0, 10)
    assert first.returncode == 0, first.stderr
    old = json.loads((out / "manifest.json").read_text())["files"]
    operations = int(first.stdout.rsplit("file operations: ", 1)[1])
    assert operations >= 5  # every file's fsync and rename, the set's fsync and switch
    new = None
    for kill_at in range(1, operations + 1):
        killed = run(kill_at, 20)
        assert killed.returncode == -9, killed.stderr
        assert verify(out) == [], f"killed at file operation {kill_at}"
        files = json.loads((out / "manifest.json").read_text())["files"]
        if files != old:
            new = new or files
            assert files == new
    done = run(0, 20)
    assert done.returncode == 0 and verify(out) == []
    assert json.loads((out / "manifest.json").read_text())["files"] != old
    assert sorted(p.name for p in tmp_path.iterdir()) == [".scores.sets", "scores"]
    assert [f".scores.sets/{p.name}" for p in (tmp_path / ".scores.sets").iterdir()] == [
        os.readlink(out)
    ]
    assert sorted(p.name for p in Path(out).iterdir()) == sorted(
        ["risk_list.parquet", "risk_list.csv", "drift.csv", "manifest.json"]
    )
