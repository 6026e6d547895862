"""`hotline requests …`, `hotline crews …` and `hotline open311 keys …` through the real CLI on
a fresh state folder (SQLite); every `--json` prints only JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import fresh_state_cli
from tests.integration.test_cli_json import cli  # noqa: F401 - the fixture

__all__ = ["cli"]


def test_request_lifecycle_from_the_cli(cli: Any) -> None:  # noqa: F811
    crew = cli(
        "crews", "add", "Heating North", "--category", "heating", "--district", "North", "--json"
    )
    assert crew["categories"] == ["heating"] and crew["districts"] == ["North"]
    assert [c["name"] for c in cli("crews", "list", "--json")] == ["Heating North"]
    made = cli(
        "requests", "create", "--category", "heating", "--street", "Lenina St", "--house", "5",
        "--flat", "12", "--district", "north", "--description", "Нет отопления",
        "--caller-number", "+79001112233", "--json",
    )  # fmt: skip
    assert made["attached"] is False and made["state"] == "new"
    again = cli(
        "requests", "create", "--category", "heating", "--street", "LENINA st.", "--house", "5",
        "--flat", "12", "--json",
    )  # fmt: skip
    assert again["attached"] is True and again["number"] == made["number"]
    assert again["reports"] == 2
    number = made["number"]
    assigned = cli("requests", "assign", number, "--crew", str(crew["id"]), "--json")
    assert assigned["state"] == "assigned" and assigned["crew"]["name"] == "Heating North"
    for state in ("on_the_way", "in_progress", "done"):
        assert cli("requests", "status", number, state, "--json")["state"] == state
    shown = cli("requests", "show", number, "--json")
    assert shown["description"] == "Нет отопления"
    assert [h["action"] for h in shown["history"]] == [
        "created", "reported_again", "assigned", "status", "status", "status",
    ]  # fmt: skip
    assert [r["number"] for r in cli("requests", "list", "--state", "done", "--json")] == [number]
    assert cli("requests", "list", "--overdue", "--json") == []

    key = cli("open311", "keys", "create", "--name", "city portal", "--json")
    assert set(key) == {"api_key", "name"} and key["api_key"].startswith("o311_")
    listed = cli("open311", "keys", "list", "--json")
    assert [k["name"] for k in listed] == ["city portal"]
    assert key["api_key"] not in str(listed)
    assert cli("open311", "keys", "revoke", "city portal", "--json")["revoked_at"]


def test_refusals_exit_2_with_the_reason(tmp_path: Path) -> None:
    run = fresh_state_cli(tmp_path)

    unknown = run("requests", "create", "--category", "nope", "--street", "A", "--house", "1")
    assert unknown.returncode == 2 and "unknown category" in unknown.stderr
    missing = run("requests", "show", "1001")
    assert missing.returncode == 2 and "no request 1001" in missing.stderr
    made = run("requests", "create", "--category", "lift", "--street", "A", "--house", "1")
    assert made.returncode == 0, made.stderr
    bad_move = run("requests", "status", "1001", "done")
    assert bad_move.returncode == 2 and "cannot become done" in bad_move.stderr


def test_bulk_assign_and_crew_link_from_the_cli(tmp_path: Path) -> None:
    run = fresh_state_cli(tmp_path)

    crew = json.loads(run("crews", "add", "Heat N", "--json").stdout)["id"]
    numbers = []
    for house in ("1", "2", "3"):
        made = run("requests", "create", "--category", "lift", "--street", "A", "--house", house,
                   "--json")  # fmt: skip
        numbers.append(json.loads(made.stdout)["number"])
    assert run("requests", "status", numbers[2], "closed").returncode == 0
    bulk = run("requests", "assign", *numbers, "--crew", str(crew), "--json")
    # One refused (a closed request cannot be assigned): exit 2, stdout still only JSON.
    assert bulk.returncode == 2, bulk.stderr
    result = json.loads(bulk.stdout)
    assert [r["number"] for r in result["assigned"]] == numbers[:2]
    assert [(r["number"], r["code"]) for r in result["refused"]] == [(numbers[2], "transition")]
    # The one-request form answers as before.
    one = run("requests", "assign", numbers[0], "--crew", str(crew), "--json")
    assert one.returncode == 0 and json.loads(one.stdout)["crew"]["id"] == crew

    added = run("users", "add", "brigade", "--role", "crew", "--json")
    assert added.returncode == 0, added.stderr
    linked = run("crews", "link", str(crew), "brigade", "--json")
    assert json.loads(linked.stdout) == {"crew_id": crew, "username": "brigade"}
    assert run("users", "add", "boss", "--role", "dispatcher").returncode == 0
    refused = run("crews", "link", str(crew), "boss")
    assert refused.returncode == 2 and "not a crew" in refused.stderr
