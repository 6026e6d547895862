"""The sandbox Asterisk's user gets an id of its own (hotline/asterisk/sandbox_root.py)."""

from __future__ import annotations

from pathlib import Path

from hotline.asterisk.sandbox_root import RUN_IDS_FROM, RUN_USER, ensure_run_user, user_ids


def _etc(folder: Path, passwd: str, group: str) -> Path:
    (folder / "etc").mkdir(parents=True)
    (folder / "etc" / "passwd").write_text(passwd)
    (folder / "etc" / "group").write_text(group)
    return folder


def test_the_run_user_takes_an_id_nobody_on_the_host_or_in_the_root_has(tmp_path: Path) -> None:
    host = _etc(
        tmp_path / "host",
        f"root:x:0:0::/root:/bin/bash\npostgres:x:101:104::/var/lib/postgresql:/bin/bash\n"
        f"someone:x:{RUN_IDS_FROM}:100::/home/someone:/bin/sh\n",
        f"root:x:0:\nstaff:x:{RUN_IDS_FROM + 1}:\n",
    )
    root = _etc(
        tmp_path / "root",
        "root:x:0:0::/root:/bin/bash\nasterisk:x:101:101::/var/lib/asterisk:/usr/sbin/nologin\n",
        f"asterisk:x:101:\nother:x:{RUN_IDS_FROM + 2}:\n",
    )
    before = (root / "etc" / "passwd").read_text()

    ids = ensure_run_user(root, host / "etc")

    assert ids == (RUN_IDS_FROM + 3, RUN_IDS_FROM + 3)
    assert user_ids(root, RUN_USER) == ids
    assert (root / "etc" / "passwd").read_text().startswith(before)  # only added to
    assert f"{RUN_USER}:x:{ids[1]}:" in (root / "etc" / "group").read_text()
    # Once there, it is kept (the root's files and folders already belong to it).
    assert ensure_run_user(root, host / "etc") == ids
    assert (root / "etc" / "passwd").read_text().count(RUN_USER) == 1
