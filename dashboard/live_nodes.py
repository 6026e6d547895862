"""A cluster's live state as one (dashboard/live.py reads one prefix): every node's router
keeps its own under `<prefix>-<node>` (Settings.live_prefixes), so one router's rebuild never
wipes another's calls; the pages read them all in one round trip and merge them here.

Calls and operators carry their node; callers waiting per queue are summed (a queue exists on
every node); an operator is taken from the node where they are present (their phone
registered there). A node whose heartbeat is old is left out and named
(`LiveView.stale_nodes`) while the others stay live: the board is stale only when every node
is. One box (no HOTLINE_NODE_AMI_HOSTS) reads its one prefix as it always did.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from call_router.settings import Settings
from dashboard.live import LiveView, NodeLive, fetch_live, live_view_of, read_live


async def read_all(redis: Redis, settings: Settings, now: datetime | None = None) -> LiveView:
    """What every live page reads: one box's state, or every node's merged (`merge_nodes`)."""
    prefixes = settings.live_prefixes()
    if None in prefixes:
        return await read_live(redis, prefixes[None], now)
    replies = await fetch_live(redis, list(prefixes.values()))
    if replies is None:
        return LiveView(stale=True, reachable=False)
    now = now or datetime.now(UTC)
    views = {
        str(node): live_view_of(*replies[4 * i : 4 * i + 4], now=now)
        for i, node in enumerate(prefixes)
    }
    return merge_nodes(views)


# Operator states that say the operator is not on a node (call_router/agents.py): a login
# is listed on the nodes where it is anything else.
ABSENT_STATES = frozenset({"offline", "logged_out"})


def merge_nodes(views: dict[str, LiveView]) -> LiveView:
    """One view of the whole cluster from each node's own (node -> view, in settings order).

    Calls carry their node (linkedids are unique across nodes: each Asterisk has its own
    systemname; a clash is kept under `<node>:<linkedid>`); callers waiting per queue are
    summed over nodes; an operator's entry is the first node's where they are present
    (registered there), else the first node's. A node without a recent heartbeat is left
    out and listed in `stale_nodes`; the view is stale only when every node is.
    """
    nodes = tuple(NodeLive(node, view.ok, view.updated_at) for node, view in views.items())
    live = {node: view for node, view in views.items() if view.ok}
    if not live:
        beats = [view.updated_at for view in views.values() if view.updated_at is not None]
        return LiveView(
            updated_at=max(beats) if beats else None,
            stale=True,
            reachable=all(view.reachable for view in views.values()),
            nodes=nodes,
        )
    calls: dict[str, dict[str, Any]] = {}
    waiting: dict[str, int] = {}
    operators: dict[str, dict[str, Any]] = {}
    by_node: dict[str, dict[str, dict[str, Any]]] = {}
    for node, view in live.items():
        for key, entry in (view.calls or {}).items():
            calls[f"{node}:{key}" if key in calls else key] = {**entry, "node": node}
        for queue, count in (view.waiting or {}).items():
            waiting[queue] = waiting.get(queue, 0) + count
        mine = by_node[node] = {}
        for login, seen in (view.operators or {}).items():
            entry = mine[login] = {**seen, "node": node}
            known = operators.get(login)
            if known is None or (_absent(known) and not _absent(entry)):
                operators[login] = entry
    return LiveView(
        calls=calls,
        waiting=waiting,
        operators=operators,
        # The oldest heartbeat among the nodes that count: what the page vouches for.
        updated_at=min(v.updated_at for v in live.values() if v.updated_at is not None),
        nodes=nodes,
        operators_by_node=by_node,
    )


def _absent(entry: dict[str, Any]) -> bool:
    return str(entry.get("state") or "") in ABSENT_STATES


def operator_entries(live: LiveView) -> list[tuple[str, dict[str, Any]]]:
    """(login, entry) of each operator row: one box, one per login; a cluster, one per node
    the operator is present on (registered, in a state other than offline), else one."""
    best = live.operators or {}
    by_node = live.operators_by_node
    if by_node is None:
        return list(best.items())
    entries: list[tuple[str, dict[str, Any]]] = []
    for login, entry in best.items():
        present = [
            mine[login]
            for mine in by_node.values()
            if login in mine and mine[login].get("state") not in ABSENT_STATES
        ]
        # Present nowhere (offline on every node): one row, on no node.
        entries.extend((login, e) for e in present or [{**entry, "node": None}])
    return entries
