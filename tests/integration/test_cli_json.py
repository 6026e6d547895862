"""Every `--json` command prints only JSON on stdout: the whole stdout parses, log lines (and
warnings such as "Asterisk not reachable") go to stderr. Run through the real CLI on a
fresh state folder (SQLite), without an Asterisk: the commands that need none."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from call_router.flows.conditions import luhn_ok
from tests.conftest import PORT_BASE, require

PAYER = next(f"7123456789{d}" for d in "0123456789" if luhn_ok(f"7123456789{d}"))


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Any]:
    env = {
        **os.environ,
        "HOTLINE_STATE_DIR": str(tmp_path / "state"),
        "HOTLINE_RECORDINGS_DIR": str(tmp_path / "recordings"),
        # Nothing listens here: commands that try Asterisk must say so on stderr only.
        "HOTLINE_AMI_PORT": str(PORT_BASE + 39),
        "HOTLINE_DATABASE_URL": "",
    }
    env.pop("HOTLINE_DATABASE_URL")

    def run(*args: str) -> Any:
        proc = subprocess.run(
            [sys.executable, "-m", "hotline", *args],
            capture_output=True,
            text=True,
            timeout=180,
            env=env,
        )
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        try:
            return json.loads(proc.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(
                f"hotline {' '.join(args)}: stdout is not only JSON: {exc}\n{proc.stdout[:2000]}"
            ) from exc

    yield run


def test_every_cheap_json_command_prints_only_json(cli: Any, tmp_path: Path) -> None:
    added = cli("operators", "add", "Json Jones", "--queues", "plumbing,lift:2", "--json")
    assert added["sip_login"] and added["applied"] is False
    assert [op["sip_login"] for op in cli("operators", "list", "--json")] == [added["sip_login"]]
    user = cli("users", "add", "jsonboss", "--role", "supervisor", "--json")
    assert user["password"]
    assert "jsonboss" in {u["username"] for u in cli("users", "list", "--json")}
    assert cli("tokens", "create", "--role", "supervisor", "--name", "crm", "--json")["token"]
    assert cli("callbacks", "list", "--json") == []
    incident = cli(
        "incidents", "add", "hot_water", "--ru", "Нет горячей воды.", "--en", "No hot water.",
        "--no-speak", "--json",
    )  # fmt: skip
    assert [i["id"] for i in cli("incidents", "list", "--json")] == [incident["id"]]
    stored = cli("meters", "add", "--payer", PAYER, "--meter", "cold_water", "123", "--json")
    assert stored["value"] == 123
    assert len(cli("meters", "list", "--payer", PAYER, "--json")) == 1
    assert len(cli("meters", "history", "--payer", PAYER, "--json")) == 1
    assert "rolled_up" in cli("reports", "rollup", "--json")
    forecast = cli("staffing", "--target-asa", "60", "--weeks", "4", "--json")
    assert len(forecast["rows"]) == 7 * 96 and forecast["target"]["average_wait"] == 60
    # The sweep asks Asterisk to rotate its logs first: unreachable here, said on stderr.
    swept = cli("retention", "sweep", "--json")
    assert swept["removed"] == {"voicemail": 0, "recordings": 0, "utterances": 0, "logs": 0}


def test_speech_recognise_json_is_only_json(cli: Any, tmp_path: Path) -> None:
    require(shutil.which("espeak-ng") is not None, "espeak-ng is not installed")
    wav = tmp_path / "lift.wav"
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(wav), "엘리베이터"], check=True)
    result = cli("speech", "recognise", str(wav), "--lang", "ko", "--json")
    assert result["file"] == str(wav) and "transcript" in result
