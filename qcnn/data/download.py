"""Downloads with a total deadline, and the rule for directories the user names.

A per-read socket timeout does not bound a download: a mirror that trickles a byte every few
seconds never trips it, and name resolution is not covered at all. Here a download runs in a
daemon thread that the caller stops waiting for at a deadline (connect + whole transfer, every
mirror), and the reading loop stops by itself once the deadline has passed or the caller gave
up, so a cancelled download never writes a cache afterwards.

Directories: a directory the user names explicitly (an argument, an environment variable) is
the only place looked at; if it does not exist or does not hold the data, that is an error that
names it (:func:`require_dir`). Only the implicit search (the user cache) may fall through to a
download or a fallback.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["DeadlinePassed", "fetch", "run_with_deadline", "require_dir"]

T = TypeVar("T")
_CHUNK = 1 << 16


class DeadlinePassed(TimeoutError):
    """The download's total deadline passed (or the caller stopped waiting)."""


def fetch(
    url: str,
    opener: Callable[..., Any],
    *,
    deadline: float,
    cancel: threading.Event,
    read_timeout: float,
    max_bytes: int,
) -> bytes:
    """The bytes at ``url`` read with ``opener(url, timeout=...)`` in chunks.

    Raises:
        DeadlinePassed: ``time.monotonic() > deadline`` or ``cancel`` is set, checked before
            connecting and after every chunk (each read is bounded by the socket timeout
            ``min(read_timeout, time left)``).
        ValueError: more than ``max_bytes`` arrive.
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0 or cancel.is_set():
        raise DeadlinePassed("the download deadline has passed")
    with opener(url, timeout=min(read_timeout, remaining)) as resp:
        # read1: whatever has arrived, instead of blocking until a whole chunk is there.
        read = getattr(resp, "read1", resp.read)
        chunks, size = [], 0
        while True:
            if cancel.is_set() or time.monotonic() > deadline:
                raise DeadlinePassed(f"{url}: the download deadline passed after {size} bytes")
            chunk = read(_CHUNK)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise ValueError(f"{url}: more than {max_bytes} bytes; not the expected file")
    return b"".join(chunks)


def run_with_deadline(
    work: Callable[[float, threading.Event, list[str]], T | None],
    deadline_s: float,
    errors: list[str],
) -> T | None:
    """``work(deadline, cancel, errors)`` in a daemon thread, waited for at most ``deadline_s``.

    ``work`` appends its failures to the list it gets; they are copied into ``errors``. If the
    deadline passes first, ``cancel`` is set (``work`` must not write anything after that),
    a line saying so is appended, and ``None`` is returned. Exceptions of ``work`` propagate.
    """
    deadline = time.monotonic() + deadline_s
    cancel = threading.Event()
    outcome: dict[str, Any] = {}
    thread_errors: list[str] = []

    def target() -> None:
        try:
            outcome["result"] = work(deadline, cancel, thread_errors)
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="qcnn-download", daemon=True)
    thread.start()
    thread.join(max(deadline - time.monotonic(), 0.0) + 1.0)  # + time to notice the deadline
    if thread.is_alive():
        cancel.set()
        errors.extend(list(thread_errors))
        errors.append(f"gave up: the download did not finish within {deadline_s:g} s")
        return None
    errors.extend(thread_errors)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


def require_dir(directory: Path, what: str, load: Callable[[Path], T | None], expected: str) -> T:
    """Load from a directory the user named; anything short of the data is an error.

    ``load(directory)`` returns the data or ``None`` when the directory holds none of the files
    (it raises itself for a partial or corrupt set). ``what`` names the origin in messages
    (``"--data-dir (data_dir)"``, ``"$QCNN_DATA_DIR"``); ``expected`` lists the files.

    Raises:
        FileNotFoundError: the directory does not exist, is not a directory, cannot be read or
            holds none of the files.
    """
    if not directory.exists():
        raise FileNotFoundError(f"{what} {str(directory)!r} does not exist")
    if not directory.is_dir():
        raise FileNotFoundError(f"{what} {str(directory)!r} is not a directory")
    try:
        data = load(directory)
    except PermissionError as exc:
        raise FileNotFoundError(f"{what} {str(directory)!r} cannot be read: {exc}") from None
    if data is None:
        raise FileNotFoundError(
            f"{what} {str(directory)!r} holds none of the expected files ({expected}); put them "
            "there, or do not name this directory"
        )
    return data
