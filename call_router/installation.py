"""This installation's generated identity in its state directory: its id and its secrets.

The secrets are the AMI users' passwords and signing keys; each is made once and never
committed."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from pathlib import Path

INSTALLATION_ID_FILE = "installation-id"
# Generated on first use, each kept once made: the AMI users' passwords; the key that signs the
# dashboard's device cookies (dashboard/device_trust.py).
_SECRET_KEYS = (
    "ami_secret",
    "ami_originate_secret",
    "ami_control_secret",
    "ami_supervise_secret",
    "dashboard_device_key",
    # `hotline cluster`: the header value with which Kamailio vouches for the carrier's calls.
    "edge_secret",
)


def installation_id(state_dir: Path) -> str:
    """This installation's id: random, made once and kept in the state directory.

    Written to a temporary file and linked into place, so processes starting together agree
    on the first one. Where the state directory cannot be written, the directory's path stands
    in (stable for that machine).
    """
    path = state_dir / INSTALLATION_ID_FILE
    try:
        return _read_id(path)
    except (OSError, ValueError):
        pass
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        temporary = state_dir / f".{INSTALLATION_ID_FILE}.{os.getpid()}"
        temporary.write_text(secrets.token_hex(6) + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process was first: its id wins
        finally:
            temporary.unlink(missing_ok=True)
        return _read_id(path)
    except (OSError, ValueError):
        return hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]


def _read_id(path: Path) -> str:
    value = path.read_text().strip()
    if not value.isalnum() or len(value) > 64:
        raise ValueError(f"bad installation id in {path}")
    return value


def load_or_create_secrets(path: Path) -> dict[str, str]:
    data: dict[str, str] = {}
    if path.exists():
        data = json.loads(path.read_text())
        if all(key in data for key in _SECRET_KEYS):
            return data
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keys added by a newer version are generated; existing ones are kept.
    for key in _SECRET_KEYS:
        data.setdefault(key, secrets.token_urlsafe(24))
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    tmp.replace(path)
    return data
