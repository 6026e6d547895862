"""Only the hotline's own user may read its secrets and recordings on this machine.

The state folder holds the SQLite call log (operators' SIP passwords, password hashes, every
call), secrets.json and the rendered Asterisk credentials; recordings/ holds residents' voices.
Every hotline process runs under umask 077 (`make_private`, set by the CLI before anything is
written, and inherited by the Asterisk it starts), so what it creates is 0700 / 0600. An admin
can still loosen a path later: `loosened` finds it and each service warns at start-up.

The sandbox Asterisk does not run as root: it drops to the root's own `asterisk` user
(hotline/asterisk/sandbox.py), which owns the folders it works in (asterisk/ and recordings/,
handed over at each start). Modes stay 0700 / 0600: our processes run as root in sandbox mode
(chroot and bind mounts need it) and read them anyway, and no other local user can even enter
the state folder. A file one of our processes writes into a folder Asterisk owns is handed to
the folder's owner (`give_to_folder_owner`), so Asterisk can read a re-rendered config or a new
prompt. The start-up check (`loosened`) is about modes, so it holds for both owners.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from call_router.settings import Settings

PRIVATE_UMASK = 0o077
# Folders under recordings/ with residents' audio (prompts/ and moh/ are ours, not private).
PRIVATE_RECORDINGS = ("voicemail", "calls", "utterances")
_SECRET_FILES = ("secrets.json", "hotline.db", "hotline.db-wal", "hotline.db-shm")
_SECRET_CONFIGS = ("manager.conf", "pjsip.conf", "voicemail.conf")


def give_to_folder_owner(path: Path) -> None:
    """Make `path` belong to its folder's owner and group (no-op unless we are root).

    A file root writes into a folder the sandbox Asterisk's user owns would be unreadable to
    it (0600 root); the mode is kept, only the owner changes.
    """
    if os.geteuid() != 0:
        return
    try:
        folder = path.parent.stat()
        mine = path.lstat()
        if (mine.st_uid, mine.st_gid) != (folder.st_uid, folder.st_gid):
            os.chown(path, folder.st_uid, folder.st_gid, follow_symlinks=False)
    except OSError:
        return


def make_private() -> None:
    """umask 077 for this process and its children: new folders 0700, new files 0600."""
    os.umask(PRIVATE_UMASK)


@dataclass(frozen=True)
class Loosened:
    path: Path
    mode: int
    wanted: int

    def message(self) -> str:
        return (
            f"{self.path} is readable by other local users (mode {self.mode:04o}); "
            f"it holds secrets or recordings: chmod {self.wanted:04o} {self.path}"
        )


def private_paths(settings: Settings) -> list[tuple[Path, int]]:
    """(path, the mode it should have) for everything that must stay the hotline's own."""
    paths: list[tuple[Path, int]] = [(settings.state_dir, 0o700)]
    paths += [(settings.state_dir / name, 0o600) for name in _SECRET_FILES]
    paths += [(settings.log_dir, 0o700), (settings.asterisk_dir / "log", 0o700)]
    paths += [(settings.attachments_dir, 0o700)]  # residents' photos of service requests
    paths += [(settings.asterisk_dir / "etc" / name, 0o600) for name in _SECRET_CONFIGS]
    recordings = settings.recordings_dir
    paths += [(recordings / name, 0o700) for name in PRIVATE_RECORDINGS]
    return paths


def loosened(settings: Settings) -> list[Loosened]:
    """Existing private paths that group or others may read, write or enter."""
    found = []
    for path, wanted in private_paths(settings):
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            continue  # not created yet: it will be, privately
        if mode & 0o077:
            found.append(Loosened(path, mode, wanted))
    return found
