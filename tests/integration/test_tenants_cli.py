"""`hotline tenants …`, `hotline numbers …` and `--tenant` on accounts and tokens, through the
real CLI on a fresh state folder (SQLite); every `--json` prints only JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import fresh_state_cli
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
        # Rendered into [from-pstn]; no Asterisk runs here to reload (added field).
        "applied": False,
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
    run = fresh_state_cli(tmp_path)

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


def test_buildings_own_queues_and_tenant_operators(cli: Any, tmp_path: Path) -> None:  # noqa: F811
    a = cli("tenants", "add", "Dom A", "--slug", "dom-a", "--queues", "plumbing,heating", "--json")
    assert a["queues"] == {"heating": "t1_heating", "plumbing": "t1_plumbing"}
    assert cli("tenants", "add", "Dom B", "--slug", "dom-b", "--json")["queues"] == {}
    assert cli("tenants", "queues", "dom-a", "plumbing", "--json")["queues"] == {
        "plumbing": "t1_plumbing"
    }
    # A's plumber is in A's own plumbing queue and may help the centre's coordinator.
    plumber = cli(
        "operators", "add", "Anna", "--queues", "plumbing,coordinator:5", "--tenant", "dom-a",
        "--json",
    )  # fmt: skip
    assert plumber["tenant"] == "dom-a"
    assert sorted(plumber["queues"], key=lambda q: q["queue"]) == [
        {"queue": "coordinator", "penalty": 5},
        {"queue": "t1_plumbing", "penalty": 0},
    ]
    # B has no own queues: its operator is in the centre's queue of the service.
    assert cli("operators", "add", "Boris", "--queues", "lift", "--tenant", "dom-b", "--json")[
        "queues"
    ] == [{"queue": "lift", "penalty": 0}]

    csv = tmp_path / "a.csv"
    csv.write_text("street;house;code\nЛенина;5;11\nМира;1;\n", encoding="utf-8")
    imported = cli("buildings", "import", str(csv), "--tenant", "dom-a", "--json")
    assert (imported["added"], imported["updated"]) == (2, 0)
    lenina = imported["buildings"][0]
    assert (lenina["street"], lenina["house"], lenina["code"], lenina["tenant"]) == (
        "Ленина", "5", "11", "dom-a"
    )  # fmt: skip
    assert [b["code"] for b in cli("buildings", "list", "--tenant", "dom-a", "--json")] == [
        "11",
        None,
    ]
    assert cli(
        "buildings", "phone", "8 914 000 00 01", "--building", str(lenina["id"]), "--json"
    ) == {
        "phone": "+79140000001",
        "building": lenina["id"],
        "tenant": "dom-a",
    }
    shown = cli("tenants", "show", "dom-a", "--json")
    assert shown["buildings"] == 2 and shown["operators"] == 1


def test_bad_building_files_and_queues_are_refused_whole(tmp_path: Path) -> None:
    run = fresh_state_cli(tmp_path)

    assert run("tenants", "add", "Dom A", "--slug", "dom-a").returncode == 0
    assert run("tenants", "add", "Dom B", "--slug", "dom-b", "--queues", "lift").returncode == 0
    good = tmp_path / "good.csv"
    good.write_text("Lenina,5,11\n", encoding="utf-8")
    assert run("buildings", "import", str(good), "--tenant", "dom-a").returncode == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("Mira,1,12\nMira,2,1x\n,3,13\nSadovaya,4,11\n", encoding="utf-8")
    for args, messages in (
        (("buildings", "import", str(bad), "--tenant", "dom-b", "--json"),
         ["nothing imported", "line 2: the code must be 1-8 digits",
          "line 3: the street is empty"]),
        (("tenants", "queues", "dom-a", "plumbing,coordinator"), ["no service 'coordinator'"]),
        (("operators", "add", "X", "--queues", "t2_lift", "--tenant", "dom-a"),
         ["unknown queue 't2_lift'"]),
        (("buildings", "phone", "anonymous", "--building", "1"), ["not a phone number"]),
    ):  # fmt: skip
        proc = run(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert proc.stdout == ""
        for message in messages:
            assert message in proc.stderr, (args, proc.stderr)
    # The file's good line (Mira 1) was not written either; nor was the clash of line 4 noticed
    # before the bad lines refused the file.
    listed = run("buildings", "list", "--json")
    assert [b["street"] for b in json.loads(listed.stdout)] == ["Lenina"]
    clash = tmp_path / "clash.csv"
    clash.write_text("Mira,1,12\nSadovaya,4,11\n", encoding="utf-8")
    proc = run("buildings", "import", str(clash), "--tenant", "dom-b")
    assert proc.returncode == 2 and "line 2: code 11 already belongs to another building" in (
        proc.stderr
    )
    assert [b["street"] for b in json.loads(run("buildings", "list", "--json").stdout)] == [
        "Lenina"
    ]


@pytest.mark.timeout(900)  # a dozen CLI processes on a busy machine
def test_a_tenant_s_own_target_and_menus(tmp_path: Path) -> None:
    """`tenants sla` and `tenants menu` on a copy of ivr_flows/: JSON only on stdout, the
    override files start as the centre's, bad input exits 2 with nothing written."""
    import shutil

    from call_router.settings import PROJECT_ROOT

    flows = tmp_path / "ivr_flows"
    shutil.copytree(PROJECT_ROOT / "ivr_flows", flows)
    run = fresh_state_cli(tmp_path, HOTLINE_FLOWS_DIR=str(flows))

    def ok(*args: str) -> Any:
        proc = run(*args, "--json")
        assert proc.returncode == 0, (args, proc.stderr)
        return json.loads(proc.stdout)

    ok("tenants", "add", "Dom Service")
    level = ok("tenants", "sla", "dom-service", "--seconds", "30", "--target", "0.9")
    assert level["service_level"] == {"seconds": 30, "target": 0.9}
    assert ok("tenants", "sla", "dom-service")["service_level"] == {
        "seconds": None,
        "target": None,
    }
    refused = run("tenants", "sla", "dom-service", "--target", "nan", "--json")
    assert refused.returncode == 2 and refused.stdout == "", refused.stderr

    folder = flows / "tenants" / "dom-service"
    assert ok("tenants", "menu", "dom-service") == {
        "tenant": "dom-service",
        "folder": str(folder),
        "calendar": False,
        "prompts": [],
        "flows": [],
    }
    assert ok("tenants", "menu", "dom-service", "calendar")["calendar"] is True
    assert (folder / "calendar.yaml").read_text() == (flows / "calendar.yaml").read_text()
    assert ok("tenants", "menu", "dom-service", "hotline")["flows"] == ["hotline"]
    assert ok("tenants", "menu", "dom-service", "prompts")["prompts"] == []
    # A copied flow and an empty prompts file are valid and change nothing yet.
    checked = run("flows", "check", "--texts-only")
    assert checked.returncode == 0, checked.stderr
    for bad in (["calendar"], ["../../etc"]):
        refused = run("tenants", "menu", "dom-service", *bad, "--json")
        assert refused.returncode == 2 and refused.stdout == "", (bad, refused.stderr)
    assert run("tenants", "menu", "nobody", "calendar", "--json").returncode == 2
    assert not (flows / "tenants" / "nobody").exists()
    removed = ok("tenants", "menu", "dom-service", "hotline", "--remove")
    assert removed["flows"] == [] and not (folder / "hotline.yaml").exists()
