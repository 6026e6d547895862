"""The per-worker call-log spools of `hotline agi --workers N`: names, locks, orphans adopted.

Spools left by workers that no longer exist are handed to a current worker before the workers
start."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agi_scripts.workers import STOP_TIMEOUT


def worker_spool(spool: Path, index: int) -> Path:
    """Worker `index`'s call-log spool; worker 0 (and the single process) keeps `spool`."""
    if index == 0:
        return spool
    return spool.with_name(f"{spool.stem}.{index}{spool.suffix}")


def spools_on_disk(spool: Path) -> dict[int, Path]:
    """Every worker spool file present, by worker index (0: `spool` itself)."""
    found: dict[int, Path] = {}
    if spool.is_file():
        found[0] = spool
    pattern = re.compile(
        rf"^{re.escape(spool.stem)}\.([1-9][0-9]{{0,5}}){re.escape(spool.suffix)}$"
    )
    with contextlib.suppress(FileNotFoundError):
        for entry in spool.parent.iterdir():
            match = pattern.match(entry.name)
            if match and entry.is_file():
                found[int(match.group(1))] = entry
    return found


@dataclass(frozen=True)
class Adopted:
    orphan: Path
    into: Path
    writes: int


def adopt_spools(spool: Path, workers: int) -> list[Adopted]:
    """Move the spools of workers >= `workers` in front of worker (index % workers)'s spool.

    Call it before the workers start. A call's writes all come from the one worker that served
    it, so its order is kept; what an orphan holds is older than anything its new owner will
    spool, hence in front. A line cut short by a crash (no newline) was never acknowledged and
    is dropped. The target is replaced atomically before the orphan is removed: a crash in
    between replays some writes twice, which the writes' idempotent keys absorb. A spool still
    locked by a live process (a killed parent's worker still draining its calls) is left
    alone, with its target: the next start hands it over.
    """
    orphans = {i: p for i, p in spools_on_disk(spool).items() if i >= workers}
    by_target: dict[int, list[int]] = {}
    for index in sorted(orphans):
        by_target.setdefault(index % workers, []).append(index)
    adopted: list[Adopted] = []
    for target, indices in sorted(by_target.items()):
        into = worker_spool(spool, target)
        with contextlib.ExitStack() as held:
            locks = [try_lock_spool(p) for p in (into, *(orphans[i] for i in indices))]
            for fd in locks:
                if fd is not None:
                    held.callback(os.close, fd)
            if None in locks:
                continue  # in use: rewriting it under a live writer would lose its appends
            parts = [_whole_lines(orphans[i].read_bytes()) for i in indices]
            current = into.read_bytes() if into.is_file() else b""
            tmp = into.with_name(into.name + ".adopting")
            with tmp.open("wb") as out:
                for part in parts:
                    out.write(part)
                out.write(current)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, into)
            _fsync_dir(into.parent)
            for index, part in zip(indices, parts, strict=True):
                orphans[index].unlink()
                adopted.append(Adopted(orphans[index], into, part.count(b"\n")))
    return adopted


def _lock_path(spool: Path) -> Path:
    return spool.with_name(spool.name + ".lock")


def try_lock_spool(spool: Path) -> int | None:
    """An exclusive lock on the spool's lock file (its fd), or None while a process holds it.
    The lock goes with the process: a killed worker's is free at once."""
    spool.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(_lock_path(spool), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def hold_spool(spool: Path, wait: float = STOP_TIMEOUT, log: Any = None) -> int | None:
    """Lock the spool for this process's life: wait (up to `wait` s) while an earlier holder
    (a worker of a killed parent, still draining) writes to it. None: it never let go (we go
    on: serving callers comes first; the writes are idempotent)."""
    deadline = time.monotonic() + wait
    while (fd := try_lock_spool(spool)) is None:
        if time.monotonic() >= deadline:
            if log is not None:
                log.warning("agi_spool_in_use", spool=str(spool))
            return None
        time.sleep(0.2)
    return fd


def _whole_lines(data: bytes) -> bytes:
    end = data.rfind(b"\n")
    return data[: end + 1] if end >= 0 else b""


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
