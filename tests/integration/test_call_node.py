"""Calls carry the cluster node that served them (migration 0022), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from call_router.call_log import CallLog
from call_router.call_log_core import CallArrival
from call_router.db import Database
from call_router.models import Call

T0 = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


def nodes(db: Database) -> dict[str, str | None]:
    with db.session() as session:
        return {
            linkedid: node for linkedid, node in session.execute(select(Call.linkedid, Call.node))
        }


def test_each_writer_names_its_node_and_a_later_writer_fills_a_missing_one(
    database: Database,
) -> None:
    node1 = CallLog(database, node="node1")
    node2 = CallLog(database, node="node2")
    single_box = CallLog(database)

    node1.ensure_call("node1-1.1", caller_number="+74951234567", caller_name=None)
    node2.ensure_calls([CallArrival("node2-1.1", "+74951234568", None, None, "500100", T0)])
    single_box.ensure_call("1.1", caller_number="+74951234569", caller_name=None)
    # The FastAGI server (no node, an older deployment) was first; the node's router fills it.
    single_box.ensure_call("node1-1.2", caller_number="+74951234560", caller_name=None)
    node1.ensure_call("node1-1.2", caller_number="+74951234560", caller_name=None)
    # A second writer never moves a call to another node.
    node2.ensure_call("node1-1.1", caller_number="+74951234567", caller_name=None)

    assert nodes(database) == {
        "node1-1.1": "node1",
        "node2-1.1": "node2",
        "1.1": None,
        "node1-1.2": "node1",
    }


def test_a_node_reconciles_only_its_own_open_calls(database: Database) -> None:
    node1 = CallLog(database, node="node1")
    node2 = CallLog(database, node="node2")
    node1.ensure_call("node1-1.1", caller_number="+74951234567", caller_name=None)
    node2.ensure_call("node2-1.1", caller_number="+74951234568", caller_name=None)

    # A node's router closes calls its Asterisk no longer has: never another node's.
    assert [c.linkedid for c in node1.open_calls()] == ["node1-1.1"]
    assert [c.linkedid for c in node2.open_calls()] == ["node2-1.1"]
    assert {c.linkedid for c in CallLog(database).open_calls()} == {"node1-1.1", "node2-1.1"}
