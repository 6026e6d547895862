"""What the sandbox Asterisk's unprivileged user owns: before each start the folders it writes
(config, spool, logs, run dir, the recordings it makes) are handed to it, modes unchanged, and
the rest of recordings/ only where our umask 077 would keep it out."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from call_router.settings import Settings

# Folders under recordings/ that Asterisk writes (the rest it only reads).
ASTERISK_WRITES = ("voicemail", "calls", "utterances")


def hand_over(settings: Settings, root: Path, instance: str, ids: tuple[int, int]) -> None:
    """Give Asterisk's user what it works in, modes unchanged (0700 / 0600).

    All of asterisk/ (config, spool, logs, run dir, astdb) and the recordings folders it
    writes; elsewhere in recordings/ (prompts, music) only what it could not read
    otherwise (written under our umask 077). The folders that lead to the bind mounts
    inside the root become enterable by its group only.
    """
    uid, gid = ids
    chown_tree(settings.asterisk_dir, uid, gid)
    recordings = settings.recordings_dir
    for name in ASTERISK_WRITES:
        # Made now if missing: one made later by our processes (root, 0700) would be
        # closed to Asterisk (RECORD FILE of an utterance, a voicemail).
        with contextlib.suppress(OSError):
            (recordings / name).mkdir(mode=0o700, parents=True, exist_ok=True)
        chown_tree(recordings / name, uid, gid)
    chown_tree(recordings, uid, gid, unreadable_only=True)
    srv = root / "srv" / "hotline"
    instance_dir = srv / instance
    for folder, owner, mode in ((srv, 0, 0o711), (instance_dir, 0, 0o750)):
        with contextlib.suppress(OSError):
            os.chown(folder, owner, gid)
            os.chmod(folder, mode)


def chown_tree(top: Path, uid: int, gid: int, *, unreadable_only: bool = False) -> None:
    """chown -R without following symlinks, skipping what is already right.

    `unreadable_only`: only what other users could not read (files without o+r, folders
    without o+rx), i.e. what our own umask 077 made; the rest Asterisk reads as anyone does.
    """

    def fix(path: Path, folder: bool) -> None:
        try:
            st = path.lstat()
        except OSError:
            return
        if stat.S_ISLNK(st.st_mode) or (st.st_uid, st.st_gid) == (uid, gid):
            return
        if unreadable_only:
            need = 0o005 if folder else 0o004
            if st.st_mode & need == need:
                return
        with contextlib.suppress(OSError):
            os.chown(path, uid, gid, follow_symlinks=False)

    if not top.is_dir() or top.is_symlink():
        return
    fix(top, True)
    for dirpath, dirs, files in os.walk(top):
        for name in dirs:
            fix(Path(dirpath) / name, True)
        for name in files:
            fix(Path(dirpath) / name, False)
