"""The flow's step records: held between two waits for the caller, handed to the call-log writer
as one row before every command that may wait, read back one timeline entry per step."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from agi_scripts.server import AgiServer
from call_router.db import Database
from call_router.models import Call, CallEvent
from call_router.timeline_items import flow_steps_data, timeline_items
from tests.unit.test_agi_protocol import LINKEDID, FakeAsterisk, run_call
from tests.unit.test_flow_engine import CALENDAR, Stack, moscow, settings, stack  # noqa: F401 (fixtures)

# Two steps that do not wait, a prompt, a keypad menu, a route without a prompt.
FLOW = """\
start: hours
nodes:
  hours:
    type: condition
    branches:
      - {if: {business_hours: true}, next: mark}
    else: hello
  mark: {type: set, vars: {seen: "yes"}, next: hello}
  hello: {type: play, prompt: hello, next: menu}
  menu:
    type: menu
    prompt: menu
    invalid_prompt: sorry
    options:
      6: {next: lift}
    on_failure: lift
  lift: {type: route, queue: lift, intent: lift}
"""
OPEN = "2026-11-23 12:00"


def spy(agi: AgiServer, fake: FakeAsterisk) -> list[tuple[str, Any]]:
    """One list, in the order it happened: each command the fake Asterisk got (its first two
    words), and each write the server handed to its call-log writer (a `flow_steps` row: its
    steps' nodes)."""
    seen: list[tuple[str, Any]] = []
    submit = agi.writer.submit

    def submit_and_note(op: str, linkedid: str, **args: Any) -> None:
        if args.get("kind") == "flow_steps":
            seen.append(("steps", [step["node"] for step in args["data"]["steps"]]))
        else:
            seen.append(("write", args.get("kind") or op))
        submit(op, linkedid, **args)

    def note(cmd: str) -> None:
        seen.append(("command", " ".join(cmd.split()[:2])))

    agi.writer.submit = submit_and_note  # type: ignore[method-assign]
    fake.override = note  # type: ignore[assignment]  # answers nothing itself: the fake does
    return seen


def timeline(db: Database) -> list[tuple[str, Any]]:
    with db.session() as session:
        call = session.scalars(select(Call).where(Call.linkedid == LINKEDID)).one()
        return [
            (item.kind, item.data.get("node")) for item in call.timeline if item.kind != "tenant"
        ]


def rows(db: Database) -> list[str]:
    with db.session() as session:
        return list(session.scalars(select(CallEvent.kind).order_by(CallEvent.id)))


async def test_the_steps_are_handed_over_before_each_wait_and_read_back_one_by_one(
    stack: Stack,  # noqa: F811
    db: Database,
) -> None:
    server = await stack.serve(FLOW, clock=moscow(OPEN), calendar=CALENDAR)
    fake = FakeAsterisk(keys=[("6", False)])
    seen = spy(server, fake)
    await run_call(server, fake)
    # Nothing held while the caller listens or keys in; not handed over for a command Asterisk
    # answers at once (MSet) nor for another write (the menu result): the steps after the
    # last wait when the flow ends.
    assert [s for s in seen if s[1] not in ("ANSWER", "GET VARIABLE")] == [
        ("write", "ensure_call"),
        ("steps", ["hours", "mark"]),
        ("command", "STREAM FILE"),
        ("steps", ["hello"]),
        ("command", "GET DATA"),
        ("write", "record_menu_result"),
        ("command", "EXEC MSet"),
        ("steps", ["menu", "lift"]),
    ]
    assert rows(db) == ["flow_steps", "flow_steps", "menu_result", "flow_steps"]
    # Read back: every step an entry of its own, in the order the caller went (the menu's
    # step before the menu result, though its row was written after it).
    assert timeline(db) == [
        ("flow_step", "hours"),
        ("flow_step", "mark"),
        ("flow_step", "hello"),
        ("flow_step", "menu"),
        ("menu_result", None),
        ("flow_step", "lift"),
    ]


async def test_a_routes_step_goes_with_the_steps_before_its_announcement(
    stack: Stack,  # noqa: F811
    db: Database,
) -> None:
    # The shipped routes announce the transfer: the route is decided and recorded before that
    # prompt, so its step joins the menu's at that wait instead of a row of its own at the end.
    announced = FLOW.replace(
        "lift: {type: route, queue: lift, intent: lift}",
        "lift: {type: route, queue: lift, intent: lift, prompt: hello}",
    )
    server = await stack.serve(announced, clock=moscow(OPEN), calendar=CALENDAR)
    fake = FakeAsterisk(keys=[("6", False)])
    seen = spy(server, fake)
    await run_call(server, fake)
    assert seen[-4:] == [
        ("write", "record_menu_result"),
        ("command", "EXEC MSet"),
        ("steps", ["menu", "lift"]),
        ("command", "STREAM FILE"),
    ]
    assert rows(db) == ["flow_steps", "flow_steps", "menu_result", "flow_steps"]
    assert timeline(db)[-3:] == [
        ("flow_step", "menu"),
        ("menu_result", None),
        ("flow_step", "lift"),
    ]


async def test_a_hang_up_keeps_the_steps_before_it_and_follows_them(
    stack: Stack,  # noqa: F811
    db: Database,
) -> None:
    server = await stack.serve(FLOW, clock=moscow(OPEN), calendar=CALENDAR)
    fake = FakeAsterisk(hangup_on=("GET DATA", 1))
    await run_call(server, fake)
    assert timeline(db) == [
        ("flow_step", "hours"),
        ("flow_step", "mark"),
        ("flow_step", "hello"),
        ("hangup_in_menu", "menu"),
    ]
    assert rows(db)[-1] == "hangup_in_menu"


@dataclass
class Row:
    id: int
    at: datetime
    kind: str
    data: dict[str, Any] | None


T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def test_a_row_of_steps_is_one_entry_per_step_at_its_own_time() -> None:
    steps = flow_steps_data([{"node": "a"}, {"node": "b"}, {"node": "c"}], [0, 1500, 900_000])
    items = timeline_items(
        [
            Row(1, T0 - timedelta(seconds=1), "ensure", {}),
            Row(2, T0, "flow_steps", steps),
            Row(3, T0 + timedelta(milliseconds=2), "menu_result", {"queue": "lift"}),
            Row(4, T0 + timedelta(seconds=2), "hangup", None),
        ]
    )
    assert [(i.id, i.kind, i.data.get("node")) for i in items] == [
        (1, "ensure", None),
        (2, "flow_step", "a"),
        (2, "flow_step", "b"),
        (3, "menu_result", None),  # written meanwhile: between the steps by time
        (2, "flow_step", "c"),
        (4, "hangup", None),
    ]
    assert items[2].at == T0 + timedelta(milliseconds=1.5)
    assert items[-1].data == {}


def test_an_old_or_odd_row_is_shown_as_it_is() -> None:
    old = Row(1, T0, "flow_step", {"node": "menu"})  # written one step a row (before 2026-12)
    odd = [
        Row(2, T0, "flow_steps", {"steps": [{"node": "a"}], "us": [0, 1]}),  # lengths differ
        Row(3, T0, "flow_steps", {"steps": [{"node": "a"}], "us": ["soon"]}),
        Row(4, T0, "flow_steps", {"steps": "a"}),
    ]
    items = timeline_items([old, *odd])
    assert [(i.kind, i.data) for i in items] == [
        ("flow_step", {"node": "menu"}),
        *[("flow_steps", row.data) for row in odd],
    ]
