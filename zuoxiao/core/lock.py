"""One run per output directory: an exclusive fcntl.flock on <output_dir>/.lock.

flock is released by the kernel when the holder dies (even kill -9), so a crashed run never leaves a
stale lock behind; the pid/host/time written into the file are only there to make the second run's
message useful ("held by pid 123 on host-a since ...").
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from zuoxiao.core.errors import LockHeld


class RunLock:
    """Context manager: ``with RunLock(output_dir): ...``; raises LockHeld if another process holds it."""

    def __init__(self, directory: str | Path, purpose: str = "zuoxiao run"):
        self.path = Path(directory) / ".lock"
        self.purpose = purpose
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LockHeld(
                f"another run holds the lock on {self.path.parent} ({holder}); wait for it to finish, or "
                f"if no such process is alive, check the host named: the lock is released automatically "
                "when its holder exits"
            ) from None
        # We hold it: record who we are (truncate first, the previous holder's text may be longer).
        info = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": self.purpose,
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # an unheld lock file says nobody holds it
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        raw = os.pread(fd, 4096, 0).decode(errors="replace")
        info = json.loads(raw)
        return f"{info.get('purpose', 'a run')}: pid {info.get('pid')} on {info.get('host')} since {info.get('since')}"
    except (OSError, ValueError):
        return "holder unknown"
