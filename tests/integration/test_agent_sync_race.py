"""The router's agent sync never undoes a change that the CLI or the API made while it ran
(real SQLite and PostgreSQL; Asterisk's queue membership played by a small fake over AmiSender).

The router applies the desired state (the database) to Asterisk every few seconds. An operator
who comes back from lunch (`hotline agents unpause`) is written to the database and unpaused in
Asterisk by the CLI at once; a router sync that read the desired state just before, and
Asterisk's membership just after, saw "paused" wanted and "unpaused" present, and paused the
operator again until its next pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime

from call_router.agent_membership import Membership, interface_of
from call_router.agent_store import record_login, record_pause
from call_router.agents import AgentService
from call_router.db import Database
from call_router.operators import add_operator, parse_skills
from tests.unit.test_agents_plan import member

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


class QueuesOfAsterisk:
    """Queue membership as Asterisk keeps it: QueueStatus reads it, member actions change it.
    `during_status` runs once, inside the next QueueStatus, before Asterisk answers it."""

    def __init__(self, members: list[Membership]) -> None:
        self.members = {(m.queue, m.interface): m for m in members}
        self.actions: list[dict[str, str]] = []
        self.during_status: Callable[[], None] | None = None

    async def send(self, fields: Mapping[str, str], *, many: bool = False) -> list[dict[str, str]]:
        if fields["Action"] == "QueueStatus":
            if self.during_status is not None:
                hook, self.during_status = self.during_status, None
                hook()
            return [
                {"Response": "Success", "EventList": "start"},
                *(self.event(m) for m in self.members.values()),
                {"Event": "QueueStatusComplete"},
            ]
        self.actions.append(dict(fields))
        if fields["Action"] == "QueuePause":
            key = (fields["Queue"], fields["Interface"])
            paused = fields["Paused"] == "true"
            self.members[key] = replace(
                self.members[key], paused=paused, reason=fields.get("Reason", "") if paused else ""
            )
        return [{"Response": "Success"}]

    @staticmethod
    def event(m: Membership) -> dict[str, str]:
        return {
            "Event": "QueueMember",
            "Queue": m.queue,
            "Name": m.name,
            "Location": m.interface,
            "StateInterface": m.interface,
            "Membership": "dynamic",
            "Penalty": str(m.penalty),
            "Paused": "1" if m.paused else "0",
            "PausedReason": m.reason,
            "Status": str(m.status),
            "InCall": "0",
        }


def test_a_sync_running_while_the_operator_unpauses_leaves_them_unpaused(
    database: Database,
) -> None:
    with database.session() as s:
        login = add_operator(s, "Olga", parse_skills("lift")).sip_login
        record_login(s, login, ["lift"], "cli", NOW)
        record_pause(s, login, True, "lunch", "api", NOW)
    interface = interface_of(login)
    asterisk = QueuesOfAsterisk(
        [member("lift", interface, name="Olga", paused=True, reason="lunch")]
    )

    def operator_comes_back() -> None:
        """`hotline agents unpause`: the database first, then Asterisk."""
        with database.session() as s:
            record_pause(s, login, False, None, "cli", NOW)
        key = ("lift", interface)
        asterisk.members[key] = replace(asterisk.members[key], paused=False, reason="")

    asterisk.during_status = operator_comes_back
    asyncio.run(AgentService(database).sync(asterisk))

    assert not asterisk.members[("lift", interface)].paused, asterisk.actions
    assert not [a for a in asterisk.actions if a.get("Paused") == "true"], asterisk.actions
