"""One writer per output folder (issue 21, class A: "no lock on --out").

Every command that writes an ``--out`` folder locks it in its pre-flight check
(:func:`qcnn.experiments.cli.check_output_dir`, :class:`qcnn.io.DirectoryLock`) for as long as
it runs. A second command on the same folder is refused before any work with one ``error:``
line naming the holder (pid, start time, command) and status 2; the lock ends with the command
(also on an exception or Ctrl-C) and with its process (a killed holder's lock file does not
block); the lock file never counts as contents of the folder.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from qcnn.experiments import cli, mnist
from qcnn.io import LOCK_NAME, DirectoryLock, DirectoryLocked
from tests.conftest import TINY, python_m

ROOT = Path(__file__).resolve().parents[2]
# holds --out (argv[1]) the way a command does, says "ready", and waits until its stdin closes
HOLDER = (
    "import sys; from pathlib import Path; from qcnn.experiments.cli import check_output_dir; "
    "check_output_dir(Path(sys.argv[1])); print('ready', flush=True); sys.stdin.read()"
)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QCNN_TEST_")}
    return {**env, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}


def _command(name: str, out: Path, *more: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*python_m(), f"qcnn.experiments.{name}", "--out", str(out), *more],
        env=_env(),
        cwd=out.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def holder(tmp_path):
    """A live process holding ``tmp_path / 'out'``: (process, folder)."""
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)],
        env=_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc, out
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)


def _unlocked(folder: Path) -> bool:
    """Whether nobody holds the folder's lock (probed on a fresh open file, then let go)."""
    fd = os.open(folder / LOCK_NAME, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.mark.usefixtures("mnist_source")
@pytest.mark.parametrize("command", ["mnist", "sweep"])
def test_a_second_command_on_a_held_out_is_refused_naming_the_holder(command, holder):
    proc, out = holder
    record = (out / LOCK_NAME).read_bytes()
    done = _command(command, out, *TINY)
    assert done.returncode == 2, done.stderr
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and "error:" in err[0] and "is in use by" in err[0]
    assert f"pid {proc.pid}" in err[0] and "started " in err[0] and "check_output_dir" in err[0]
    assert done.stdout == ""  # refused before any work (no model description, no data loaded)
    assert [p.name for p in out.iterdir()] == [LOCK_NAME]  # nothing written
    assert (out / LOCK_NAME).read_bytes() == record  # the holder's record left as it was
    assert json.loads(record)["pid"] == proc.pid


@pytest.mark.kill  # two short trainings: with the kill/resume tests (CI: -m "dask or kill")
@pytest.mark.usefixtures("mnist_source")
def test_a_killed_holders_lock_file_does_not_block_and_resume_follows(holder):
    proc, out = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert (out / LOCK_NAME).exists()  # left behind by the dead holder: its lock died with it
    first = _command("mnist", out, *TINY)  # a folder holding only the lock file is empty
    assert first.returncode == 0, first.stderr
    assert (out / "results.json").exists() and _unlocked(out)  # released when the command ended
    again = _command("mnist", out, *TINY, "--resume")  # its own run, recognised
    assert again.returncode == 0, again.stderr
    assert _unlocked(out)


def test_the_lock_is_released_when_a_command_is_interrupted(tmp_path, monkeypatch):
    out = tmp_path / "out"

    def interrupted(*_a, **_k):
        assert not _unlocked(out)  # held while the command works
        raise KeyboardInterrupt

    monkeypatch.setattr(mnist, "load_data", interrupted)
    with pytest.raises(KeyboardInterrupt):
        mnist.main(["--out", str(out), *TINY])
    assert _unlocked(out) and (out / LOCK_NAME).read_bytes() == b""  # record cleared
    assert not cli._held_out_locks


def test_the_lock_file_is_not_contents(tmp_path, capsys):
    only_lock = tmp_path / "only-lock"
    only_lock.mkdir()
    (only_lock / LOCK_NAME).write_text('{"pid": 1}')
    with pytest.raises(ValueError, match="nothing to resume"):  # no run in it
        cli.check_output_dir(only_lock, resume=True)
    cli.check_output_dir(only_lock)  # new or empty
    cli.release_output_locks()
    full = tmp_path / "full"
    full.mkdir()
    (full / "results.json").write_text("{}")
    (full / LOCK_NAME).write_text("")
    with pytest.raises(ValueError, match="not empty") as info:
        cli.check_output_dir(full)
    assert LOCK_NAME not in str(info.value)


def test_a_held_folder_is_refused_and_a_free_one_taken_in_process(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with DirectoryLock.acquire(out):
        with pytest.raises(DirectoryLocked, match=rf"pid {os.getpid()} on .*, started "):
            DirectoryLock.acquire(out)
    with DirectoryLock.acquire(out):  # released by the with block
        pass


@pytest.mark.parametrize("record", [b"", b"{not json", b'{"pid": "1; rm -rf"}', b"\xff\xfe"])
def test_an_unreadable_holder_record_still_gives_one_line(tmp_path, record):
    out = tmp_path / "out"
    out.mkdir()
    with DirectoryLock.acquire(out) as lock:
        lock.path.write_bytes(record)  # a holder that has not written yet, or a planted file
        with pytest.raises(ValueError, match="in use by another process") as info:
            cli.check_output_dir(out)
    assert "\n" not in str(info.value)


def test_a_symlinked_lock_file_is_not_followed(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    (out / LOCK_NAME).symlink_to(elsewhere)
    with pytest.raises(ValueError, match="not writable"):
        cli.check_output_dir(out)
    assert not elsewhere.exists()


# ----------------------------------------------------------------------------------------------
# Symlinks inside --out (issue 21, class A): nothing is read or written outside --out
# ----------------------------------------------------------------------------------------------


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("linked", ["runs/run-a", "runs/run-a/run.json", "results.json", "runs"])
def test_a_symlink_inside_out_is_refused_on_resume(linked, tmp_path, monkeypatch, capsys):
    def _forbid(*_a, **_k):
        raise AssertionError("work started although the command should have stopped")

    monkeypatch.setattr(mnist, "load_data", _forbid)
    monkeypatch.setattr(mnist, "train_run", _forbid)
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    (out / "runs" / "run-a").mkdir(parents=True)
    (out / "runs" / "run-a" / "run.json").write_text("{}")
    (out / "results.json").write_text('{"runs": []}')
    # move the linked entry elsewhere and leave a symlink to it in its place
    elsewhere.mkdir()
    target = elsewhere / Path(linked).name
    (out / linked).rename(target)
    (out / linked).symlink_to(target, target_is_directory=target.is_dir())
    before = _snapshot(elsewhere)
    with pytest.raises(SystemExit) as info:
        mnist.main(["--out", str(out), "--resume", *TINY])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds a symlink" in err and repr(linked) in err
    assert _snapshot(elsewhere) == before  # nothing read into a run, nothing written there
    assert _unlocked(out)


def test_a_folder_without_symlinks_passes(tmp_path):
    out = tmp_path / "out"
    (out / "runs" / "a").mkdir(parents=True)
    (out / "runs" / "a" / "run.json").write_text("{}")
    cli.refuse_symlinks(out)  # no error
    (out / "runs" / "b").symlink_to(out / "runs" / "a")  # even one pointing inside --out
    with pytest.raises(ValueError, match="'runs/b' -> "):
        cli.refuse_symlinks(out)
