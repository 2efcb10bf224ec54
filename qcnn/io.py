"""Atomic file writes: a crash mid-write never leaves a truncated result or checkpoint.

Every writer goes to a temporary file in the destination directory, flushes and fsyncs it, then
``os.replace`` s it over the target (atomic on POSIX and Windows for same-filesystem renames).

- The file gets the permissions of a normally created file (``0o666`` minus the user's umask),
  not the ``0o600`` of :func:`tempfile.mkstemp`.
- A kill (``SIGKILL``, power loss) between creating and renaming the temporary file leaves it
  behind. Its name records the writer's process id (``.<name>.qcnn-<pid>-<random>.tmp``), so
  :func:`remove_stale_temp_files` can remove exactly the ones whose writer is gone; the commands
  call it on their output folder at start.

One writer per folder (:class:`DirectoryLock`): a command holds an exclusive ``flock`` on the
file :data:`LOCK_NAME` inside its output folder for as long as it runs; the lock dies with the
process (a killed holder leaves the file, never the lock), and the file records who holds it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shlex
import socket
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

import numpy as np

__all__ = [
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_savez",
    "DirectoryLock",
    "DirectoryLocked",
    "LOCK_NAME",
    "json_differences",
    "remove_stale_temp_files",
    "to_jsonable",
]

_TEMP_MARK = "qcnn-"
# .<target name>.qcnn-<pid>-<mkstemp's random part>.tmp
_TEMP_RE = re.compile(r"^\..+\.qcnn-(?P<pid>\d+)-[A-Za-z0-9_]+\.tmp$")
_umask_lock = threading.Lock()

try:  # POSIX; elsewhere (Windows) folders are not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

# The lock file of an output folder: hidden, and not a file of any run (every check that looks
# at a folder's contents leaves it out: a folder holding only this file is empty).
LOCK_NAME = ".qcnn-out.lock"


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:  # elsewhere: set and restore (other threads may not create files meanwhile)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return True  # cannot tell (e.g. Windows): keep the file
    return True


def remove_stale_temp_files(directory: str | os.PathLike, *, recursive: bool = True) -> list[Path]:
    """Remove the temporary files of atomic writes whose writing process no longer runs.

    Only names made by :func:`atomic_open` are considered, and only those whose recorded
    process id is not alive (a live writer's file is left alone). Returns the removed paths.
    """
    root = Path(directory)
    if not root.is_dir():
        return []
    removed = []
    paths = root.rglob(".*.tmp") if recursive else root.glob(".*.tmp")
    for path in paths:
        m = _TEMP_RE.match(path.name)
        if m is None or not path.is_file() or _pid_alive(int(m.group("pid"))):
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open supports modes 'w' and 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{_TEMP_MARK}{os.getpid()}-", suffix=".tmp", dir=path.parent
    )
    try:
        fh_: IO = (
            os.fdopen(fd, "w", encoding="utf-8", newline="") if mode == "w" else os.fdopen(fd, "wb")
        )
        with fh_ as fh:
            yield fh
            fh.flush()
            if hasattr(os, "fchmod"):  # mkstemp's 0600 -> what open() would have given
                os.fchmod(fh.fileno(), 0o666 & ~current_umask())
            os.fsync(fh.fileno())
            _test_hook_before_rename(path)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


_hook_hits: dict[str, int] = {}


def _test_hook_before_rename(path: Path) -> None:
    """Tests only: with ``QCNN_TEST_SLOW_WRITE=<substring>:<seconds>[:<n>]`` in the environment,
    sleep that long after writing the temporary file of a target whose name contains the
    substring (only at the n-th such write of this process, if n is given), before the rename,
    so that a test can kill the process inside the write window; the file named by
    ``QCNN_TEST_SLOW_WRITE_MARKER`` then receives ``"<pid> <target>"``. Unset: does nothing."""
    spec = os.environ.get("QCNN_TEST_SLOW_WRITE")
    if not spec:
        return
    name, seconds, *nth = spec.split(":")
    if not name or name not in path.name:
        return
    _hook_hits[name] = _hook_hits.get(name, 0) + 1
    if nth and _hook_hits[name] != int(nth[0]):
        return
    import time

    marker = os.environ.get("QCNN_TEST_SLOW_WRITE_MARKER")
    if marker:  # tell the test that the window is open, and which process to kill
        Path(marker).write_text(f"{os.getpid()} {path}")
    time.sleep(float(seconds))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w") as fh:
        fh.write(text)


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays and paths inside ``obj`` to plain JSON types."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not np.isfinite(obj):
        return None  # JSON has no NaN/inf; null is the honest encoding
    return obj


_ABSENT = object()


def json_differences(
    stored: Any, current: Any, path: str = "", *, names: tuple[str, str] = ("stored", "now")
) -> list[str]:
    """Every place where two JSON-like values differ, as ``"<dotted key>: <stored> != <now>"``.

    Dicts are compared key by key (a key present on one side only is reported as ``(absent)``),
    lists element by element when their lengths agree, everything else with ``==``. Used to
    name the settings that differ between a checkpoint or record and the run asked for.
    """
    if isinstance(stored, dict) and isinstance(current, dict):
        out = []
        for key in sorted(set(stored) | set(current), key=str):
            sub = f"{path}.{key}" if path else str(key)
            out += json_differences(
                stored.get(key, _ABSENT), current.get(key, _ABSENT), sub, names=names
            )
        return out
    if (
        isinstance(stored, list)
        and isinstance(current, list)
        and len(stored) == len(current)
        and stored != current
    ):
        out = []
        for i, (a, b) in enumerate(zip(stored, current, strict=True)):
            out += json_differences(a, b, f"{path}[{i}]", names=names)
        return out
    if stored is _ABSENT or current is _ABSENT or stored != current:
        show = [
            "(absent)" if v is _ABSENT else json.dumps(to_jsonable(v)) for v in (stored, current)
        ]
        return [f"{path or '(value)'}: {names[0]} {show[0]}, {names[1]} {show[1]}"]
    return []


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int = 2) -> None:
    """Serialise ``obj`` (numpy types allowed) as JSON and write it atomically."""
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=indent, allow_nan=False) + "\n")


def atomic_savez(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Save ``arrays`` as an uncompressed ``.npz`` atomically (no pickled objects allowed)."""
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise TypeError(f"array {name!r} has dtype object; refusing to pickle it")
    with atomic_open(path, "wb") as fh:
        # cast: numpy's stub types **kwds as its own keyword arguments (allow_pickle: bool)
        np.savez(fh, **cast(dict[str, Any], arrays))


class DirectoryLocked(RuntimeError):
    """Another live process holds the lock of the folder; the message names it (one line)."""


class DirectoryLock:
    """An exclusive lock on a directory, held while this object is (``flock`` on the file
    :data:`LOCK_NAME` inside it).

    The file is created once and never removed or replaced (removing it would let a second
    writer lock a new file while the first still holds the old one); it holds a small JSON
    record of the holder (pid, command line, start time, host) written after locking and
    cleared at :meth:`release`. A ``flock`` belongs to the open file and dies with the process,
    so a file left by a killed process does not block anyone. The file is opened without
    following a symlink (a planted link cannot redirect the record outside the folder).
    """

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, directory: str | os.PathLike) -> DirectoryLock:
        """Lock ``directory`` (which must exist) without waiting.

        Raises :class:`DirectoryLocked` naming the holder when another process holds it, and
        OSError when the lock file cannot be created or opened (``ELOOP``: it is a symlink).
        """
        path = Path(directory) / LOCK_NAME
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags, 0o666)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file", str(path))
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise DirectoryLocked(_describe_holder(os.pread(fd, 4096, 0))) from None
            argv = list(getattr(sys, "orig_argv", sys.argv)) or ["?"]
            argv[0] = Path(argv[0]).name  # python -m qcnn.experiments.mnist ...
            record = {
                "pid": os.getpid(),
                "command": shlex.join(argv),
                "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                "host": socket.gethostname(),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, path)

    def release(self) -> None:
        """Clear the holder record and unlock (closing the file unlocks); idempotent."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)

    def __enter__(self) -> DirectoryLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _describe_holder(raw: bytes) -> str:
    """``pid 123 on host, started ..., command: ...`` from a lock file's record (which anyone
    may have written: only well-typed fields are shown, the command cut and kept on one line)."""
    try:
        rec = json.loads(raw.decode())
    except (UnicodeDecodeError, ValueError, RecursionError):
        rec = None
    if not isinstance(rec, dict) or not isinstance(rec.get("pid"), int):
        return "another process (it has not recorded itself yet)"
    text = f"pid {rec['pid']}"
    if isinstance(rec.get("host"), str):
        text += f" on {rec['host'][:64]!r}"
    if isinstance(rec.get("started"), str):
        text += f", started {rec['started'][:40]}"
    if isinstance(rec.get("command"), str):
        command = rec["command"]
        command = command if len(command) <= 300 else command[:300] + "..."
        text += f", command: {command!r}"
    return text
