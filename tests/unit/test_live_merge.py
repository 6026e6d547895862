"""Merging a cluster's live state (dashboard/live_nodes.py `merge_nodes`): the rules the wallboard's
figures rest on. The same against real Redis and the real writer: tests/integration/
test_live_nodes.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dashboard.live import LiveView
from dashboard.live_nodes import merge_nodes

NOW = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)


def fresh(**parts: object) -> LiveView:
    values: dict[str, object] = {"calls": {}, "waiting": {}, "operators": {}, "updated_at": NOW}
    return LiveView(**{**values, **parts})  # type: ignore[arg-type]


def test_waiting_is_summed_and_calls_keep_their_node_even_on_a_linkedid_clash() -> None:
    merged = merge_nodes(
        {
            "node1": fresh(calls={"L1": {"stage": "queue"}}, waiting={"plumbing": 2}),
            "node2": fresh(
                calls={"L1": {"stage": "menu"}, "L2": {"stage": "queue"}},
                waiting={"plumbing": 1, "lift": 1},
                updated_at=NOW - timedelta(seconds=3),
            ),
        }
    )
    assert merged.waiting == {"plumbing": 3, "lift": 1}
    assert merged.calls == {
        "L1": {"stage": "queue", "node": "node1"},
        "node2:L1": {"stage": "menu", "node": "node2"},
        "L2": {"stage": "queue", "node": "node2"},
    }
    # What the page vouches for is the oldest heartbeat among the nodes counted.
    assert merged.updated_at == NOW - timedelta(seconds=3)
    assert not merged.stale and merged.stale_nodes == frozenset()


def test_an_operator_is_taken_from_the_node_where_they_are_present() -> None:
    merged = merge_nodes(
        {
            "node1": fresh(operators={"anna": {"state": "offline"}, "boris": {"state": "free"}}),
            "node2": fresh(operators={"anna": {"state": "busy"}, "boris": {"state": "paused"}}),
        }
    )
    assert merged.operators == {
        "anna": {"state": "busy", "node": "node2"},
        "boris": {"state": "free", "node": "node1"},
    }
    assert merged.operators_by_node is not None
    assert merged.operators_by_node["node1"]["anna"] == {"state": "offline", "node": "node1"}


def test_stale_nodes_are_left_out_and_all_stale_is_stale() -> None:
    old = NOW - timedelta(minutes=1)
    quiet = LiveView(updated_at=old, stale=True)
    merged = merge_nodes({"node1": fresh(calls={"L1": {}}), "node2": quiet})
    assert merged.ok and merged.stale_nodes == frozenset({"node2"})
    assert list(merged.calls or {}) == ["L1"]
    assert [n.status(NOW)["live_age_seconds"] for n in merged.nodes] == [0, 60]
    everything = merge_nodes({"node1": quiet, "node2": LiveView(stale=True)})
    assert everything.stale and not everything.ok
    assert everything.updated_at == old
    assert everything.status(NOW)["nodes"][1] == {
        "node": "node2",
        "live": False,
        "live_updated_at": None,
        "live_age_seconds": None,
    }
    # One box: the status it always had, no node list.
    assert "nodes" not in fresh().status(NOW)
