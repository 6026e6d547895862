"""`hotline tenants …`, `hotline numbers …` and `--tenant` on accounts and tokens, through the
real CLI on a fresh state folder (SQLite); every `--json` prints only JSON."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.integration.test_cli_json import cli  # noqa: F401 - the fixture

__all__ = ["cli"]


def test_tenants_numbers_and_scoped_credentials(cli: Any) -> None:  # noqa: F811
    added = cli("tenants", "add", "Dom Service", "--json")
    assert added["slug"] == "dom-service" and added["numbers"] == []
    assert cli("tenants", "add", "ТСЖ Лесная", "--slug", "lesnaya", "--json")["name"] == (
        "ТСЖ Лесная"
    )
    assert cli("numbers", "add", "5-100", "--tenant", "dom-service", "--json") == {
        "number": "5100",
        "tenant": "dom-service",
    }
    assert cli("numbers", "add", "500100", "--centre", "--json")["tenant"] is None
    assert cli("numbers", "list", "--json") == [
        {"number": "500100", "tenant": None},
        {"number": "5100", "tenant": "dom-service"},
    ]
    shown = cli("tenants", "show", "dom-service", "--json")
    assert shown["numbers"] == ["5100"] and shown["calls"] == 0
    assert [t["slug"] for t in cli("tenants", "list", "--json")] == ["dom-service", "lesnaya"]

    token = cli("tokens", "create", "--role", "supervisor", "--tenant", "lesnaya", "--json")
    assert token["tenant"] == "lesnaya" and token["token"].startswith("hlt_")
    centre = cli("tokens", "create", "--role", "supervisor", "--json")
    assert centre["tenant"] is None
    listed = {t["id"]: t["tenant"] for t in cli("tokens", "list", "--json")}
    assert listed == {token["id"]: "lesnaya", centre["id"]: None}
    user = cli(
        "users", "add", "boss-a", "--role", "supervisor", "--tenant", "dom-service", "--json"
    )
    assert user["tenant"] == "dom-service"
    assert {u["username"]: u["tenant"] for u in cli("users", "list", "--json")} == {
        "boss-a": "dom-service"
    }


def test_unknown_tenants_and_bad_input_are_refused(tmp_path: Path) -> None:
    env = {**os.environ, "HOTLINE_STATE_DIR": str(tmp_path / "state")}
    env.pop("HOTLINE_DATABASE_URL", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hotline", *args],
            capture_output=True,
            text=True,
            timeout=180,
            env=env,
        )

    for args, message in (
        (("numbers", "add", "5100", "--tenant", "nobody"), "no tenant 'nobody'"),
        (("numbers", "add", "5100"), "exactly one of --tenant T or --centre"),
        (("numbers", "add", "abc", "--centre"), "number: 1-32 digits"),
        (("tenants", "add", "Bad", "--slug", "centre"), "slug"),
        (("tenants", "show", "nobody"), "no tenant 'nobody'"),
        (("tokens", "create", "--role", "supervisor", "--tenant", "nobody"), "no tenant"),
    ):
        proc = run(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert message in proc.stderr and proc.stdout == "", (args, proc.stderr)
