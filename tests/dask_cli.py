"""A Dask cluster of real ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1 (tests).

Started the way README "Running a sweep on a cluster" tells users to, with the ``dask`` command
of this interpreter, each process in a session of its own so that :meth:`DaskCLICluster.stop`
can end it with everything it started (a worker's nanny spawns the worker process and a
resource tracker). Every port is on the loopback interface: the scheduler's explicit port, and
the HTTP servers that Dask starts even without a dashboard (``--dashboard-address
127.0.0.1:0``, or they listen on every interface).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

__all__ = ["DaskCLICluster", "dask_command", "session_processes"]


def dask_command() -> list[str]:
    """The ``dask`` command installed beside this interpreter (``python -m dask`` without it)."""
    script = Path(sys.executable).with_name("dask")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "dask"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def session_processes(sessions: set[int]) -> list[tuple[int, str]]:
    """``(pid, state)`` of every process (zombies too) whose session is one of ``sessions``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(") ", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[3]) in sessions:  # state ppid pgrp session ...
            found.append((int(entry), fields[0]))
    return found


class DaskCLICluster:
    """``dask scheduler`` and ``dask worker`` subprocesses; use as a context manager (always
    stopped, whatever happened). Logs go to ``folder/<name>.log``."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.env = env
        self.procs: dict[str, subprocess.Popen] = {}
        self._logs: list[IO[bytes]] = []
        self.address = ""

    def __enter__(self) -> DaskCLICluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self, name: str, args: list[str], env: dict[str, str] | None) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "wb")  # closed in stop()
        self._logs.append(log)
        proc = subprocess.Popen(
            [*dask_command(), *args],
            env=env or self.env,
            cwd=self.folder,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def start_scheduler(self, timeout: float = 60) -> str:
        """``dask scheduler --host 127.0.0.1 --port <free port> --no-dashboard``; returns its
        address once it listens (its ``--scheduler-file`` exists)."""
        for attempt in range(3):  # the free port may be taken before the scheduler binds it
            port = _free_port()
            ready = self.folder / f"scheduler-{attempt}.json"
            proc = self._start(
                "scheduler" if attempt == 0 else f"scheduler-{attempt}",
                [
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--no-dashboard",
                    "--dashboard-address",
                    "127.0.0.1:0",
                    "--scheduler-file",
                    str(ready),
                ],
                None,
            )
            deadline = time.monotonic() + timeout
            while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            if ready.exists():
                self.address = f"tcp://127.0.0.1:{port}"
                return self.address
        raise RuntimeError(f"no dask scheduler started; see {self.folder}/scheduler*.log")

    def start_worker(
        self, name: str, *extra: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        """``dask worker <address> --nthreads 1 --host 127.0.0.1 --no-dashboard`` plus
        ``extra`` (a later ``--nthreads`` wins), its files in ``folder/<name>``."""
        return self._start(
            name,
            [
                "worker",
                self.address,
                "--nthreads",
                "1",
                "--host",
                "127.0.0.1",
                "--no-dashboard",
                "--dashboard-address",
                "127.0.0.1:0",
                "--name",
                name,
                "--local-directory",
                str(self.folder / name),
                *extra,
            ],
            env,
        )

    def wait_for_workers(self, n: int, timeout: float = 120) -> dict[str, int]:
        """Wait until ``n`` workers are connected; ``{worker name: pid of its process}``."""
        from distributed import Client

        with Client(self.address, timeout="30s") as client:
            client.wait_for_workers(n, timeout=timeout)
            pids = client.run(os.getpid)
            names = {a: w["name"] for a, w in client.scheduler_info()["workers"].items()}
        return {str(names[address]): pid for address, pid in pids.items()}

    def sessions(self) -> set[int]:
        return {proc.pid for proc in self.procs.values()}  # start_new_session: sid = pid

    def stop(self, grace: float = 15) -> None:
        """SIGTERM every worker, then the scheduler (a worker whose scheduler is gone may hang
        on shutdown), each given ``grace`` seconds; then SIGKILL whatever is left of their
        sessions, and reap."""
        order = [n for n in self.procs if not n.startswith("scheduler")]
        order += [n for n in self.procs if n.startswith("scheduler")]
        for name in order:
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(grace)
                except subprocess.TimeoutExpired:
                    pass
        for pid, state in session_processes(self.sessions()):
            if state != "Z":
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        for log in self._logs:
            log.close()

    def leftovers(self, wait: float = 10) -> list[tuple[int, str]]:
        """Processes of the cluster's sessions still running after ``wait`` seconds (zombies,
        which the init process reaps, are not running)."""
        deadline = time.monotonic() + wait
        while True:
            alive = [(p, s) for p, s in session_processes(self.sessions()) if s != "Z"]
            if not alive or time.monotonic() > deadline:
                return alive
            time.sleep(0.2)
