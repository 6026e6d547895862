"""Two Asterisk nodes behind Kamailio (`hotline cluster`), with real SIP calls.

Calls placed at the single box's SIP address are spread over both nodes, each logged once with
the node that served it; when node 1's Asterisk dies (SIGKILL, `hotline cluster stop-node 1`),
new calls go to node 2 at once (Kamailio's failure route), and its OPTIONS probe takes node 1
out of rotation within seconds. When one of a node's FastAGI servers dies, new callers get the
menu from the next server of the node's pool, and the caller whose menu died reaches the
coordinator's queue.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from call_router.db import Database
from call_router.models import Call, Callback, CallEvent
from call_router.settings import Settings
from hotline.asterisk.sandbox import Asterisk
from hotline.cluster import kamailio
from hotline.cluster.control import recorded_nodes
from hotline.sipua.register import register_once, register_scenario
from hotline.sipua.softphone import Softphone
from hotline.sipua.testcall import CallResult, place_call
from tests.conftest import (
    HOTLINE,
    PORT_BASE,
    STACK_ENV,
    asterisk_available,
    environment,
    open_callback,
    require,
    run_hotline,
    stack_ports,
    wait_for,
)

# Ports of their own, so the single-box `stack` of the same session is left alone.
CLUSTER_ENV = {**STACK_ENV, **stack_ports(PORT_BASE + 200, (PORT_BASE + 500, PORT_BASE + 899))}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Settings]:
    state = tmp_path_factory.mktemp("hotline-cluster")
    env = {
        **CLUSTER_ENV,
        "HOTLINE_STATE_DIR": str(state),
        "HOTLINE_RECORDINGS_DIR": str(state / "recordings"),
        "HOTLINE_REDIS_PREFIX": f"hotline-cluster-test-{os.getpid()}",
        "HOTLINE_DATABASE_URL": postgres_url,
    }
    with environment(env):
        settings = Settings()
        ok, reason = asterisk_available(settings)
        require(ok, reason)
        require(kamailio.binary() is not None, "kamailio is not installed (scripts/install.sh)")
        try:
            run_hotline("cluster", "up", "--nodes", "2", timeout=900)
            yield settings
        finally:
            subprocess.run(
                [*HOTLINE, "cluster", "down"],
                capture_output=True,
                timeout=180,
                env=os.environ.copy(),
            )


def status() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(run_hotline("cluster", "status", "--json").stdout)
    return result


def dispatching(node: str) -> bool | None:
    return next(n["dispatching"] for n in status()["nodes"] if n["name"] == node)


def in_rotation(settings: Settings) -> dict[str, bool]:
    return {d.node: d.up for d in kamailio.destinations(settings)}


def calls_from(db: Database, caller: str) -> list[Call]:
    with db.session() as session:
        rows = list(session.scalars(select(Call).where(Call.caller_number == caller)))
        session.expunge_all()
        return rows


def ended_call(db: Database, caller: str) -> Call:
    def ended() -> Call | None:
        rows = calls_from(db, caller)
        return rows[0] if len(rows) == 1 and rows[0].ended_at is not None else None

    call: Call = wait_for(ended, timeout=30, what=f"the logged call of {caller}")
    return call


def place_calls(settings: Settings, callers: list[str], hold: float = 3.0) -> list[CallResult]:
    with ThreadPoolExecutor(max_workers=len(callers)) as pool:
        return list(pool.map(lambda c: place_call(settings, from_number=c, hold=hold), callers))


def test_calls_are_spread_over_both_nodes_and_logged_once_each(cluster: Settings) -> None:
    st = status()
    assert st["kamailio"] is True
    assert [n["asterisk"] for n in st["nodes"]] == [True, True]
    # Both nodes answered Kamailio's OPTIONS probe: both take calls.
    wait_for(lambda: dispatching("node1") and dispatching("node2"), what="both nodes in rotation")

    callers = [f"+7495100000{i}" for i in range(4)]
    results = place_calls(cluster, callers)
    assert all(r.answered for r in results), [r.detail for r in results]
    # `hotline call` itself needs no change: it dials the same address, now Kamailio's.
    run_hotline("call", "--from", "+74951000009", "--hold", "2")

    db = Database(cluster.db_url)
    try:
        served = {caller: ended_call(db, caller) for caller in [*callers, "+74951000009"]}
    finally:
        db.dispose()
    nodes = [call.node for call in served.values()]
    # Round-robin: the four parallel calls split evenly over the two nodes.
    assert sorted(nodes[:4]) == ["node1", "node1", "node2", "node2"]
    assert set(nodes) <= {"node1", "node2"}
    for call in served.values():
        # The node's Asterisk names its call ids (systemname): no clash across nodes.
        assert call.node is not None and call.linkedid.startswith(f"{call.node}-")


def test_only_the_carrier_is_the_carrier_behind_the_edge(cluster: Settings) -> None:
    # Every request reaches the nodes from Kamailio's address, the trunk's: a stranger (another
    # address) must still not be taken for the carrier.
    stranger = place_call(cluster, from_number="+74954000001", hold=2.0, local_ip="127.0.0.9")
    assert not stranger.answered
    assert stranger.sip_status == 403, stranger.detail


def test_wrong_passwords_through_the_edge_ban_the_phones_own_address(cluster: Settings) -> None:
    # Behind Kamailio the nodes see every REGISTER from the edge's address, which they never
    # ban (it is the carrier's): the edge counts failed sign-ins by the phone's own address.
    operator = json.loads(
        run_hotline("operators", "add", "Edna Edge", "--queues", "heating", "--json").stdout
    )
    login, password = operator["sip_login"], operator["sip_password"]
    run_hotline("cluster", "up", "--nodes", "2", timeout=600)  # the roster on every node
    attacker, colleague = "127.0.0.66", "127.0.0.67"
    assert register_once(cluster, login, password, local_ip=attacker) == 200
    for attempt in range(cluster.sip_ban_threshold):
        status = register_once(cluster, login, "not-the-password", local_ip=attacker)
        assert status in (401, 403), f"attempt {attempt}: {status}"
    # Now even the right password from there is refused at the edge ...
    assert register_once(cluster, login, password, local_ip=attacker) == 403
    # ... also as if within a dialog, routed straight at a node (found by playing attacker,
    # 2026-12-06: a To-tag skipped the edge's ban, and Asterisk registered it, 200).
    node = recorded_nodes(cluster)[0].settings()
    made_up_dialog = register_scenario().replace(
        "To: <sip:[login]@[remote_ip]>\n",
        f"To: <sip:[login]@[remote_ip]>;tag=made-up\n"
        f"      Route: <sip:{node.sip_host}:{node.sip_port};lr>\n",
    )
    assert made_up_dialog.count(";tag=made-up") == 2
    assert (
        register_once(cluster, login, password, local_ip=attacker, scenario_text=made_up_dialog)
        == 403
    )
    # ... while the same operator from another address, and the carrier, are not affected.
    assert register_once(cluster, login, password, local_ip=colleague) == 200
    assert place_call(cluster, from_number="+74954000002", hold=2.0).answered


def agi_session(settings: Settings, caller: str) -> tuple[int, str] | None:
    """(node number, FastAGI address) of the AGI this caller's channel runs, if any: what
    Asterisk itself reports (channel!context!exten!prio!state!application!data!callerid!...)."""
    for spec in recorded_nodes(settings):
        node = spec.settings()
        for line in Asterisk(node).cli("core show channels concise").splitlines():
            fields = line.split("!")
            if len(fields) > 7 and fields[7] == caller and fields[5] == "AGI":
                return spec.index, fields[6].removeprefix("agi://").split("/", 1)[0]
    return None


def events_of(db: Database, call: Call) -> list[str]:
    with db.session() as session:
        return list(session.scalars(select(CallEvent.kind).where(CallEvent.call_id == call.id)))


def test_a_killed_fastagi_server_costs_no_caller(cluster: Settings) -> None:
    st = status()
    # Every node runs a pool of two FastAGI servers (`--agi-per-node`, default 2).
    assert [n["services"]["agi"] and n["services"]["agi2"] for n in st["nodes"]] == [True, True]
    wait_for(lambda: dispatching("node1") and dispatching("node2"), what="both nodes in rotation")

    # A caller in the menu of a node's first FastAGI server, pressing nothing.
    held = "+74956000001"
    callers = [f"+7495600001{i}" for i in range(4)]
    with ThreadPoolExecutor(max_workers=1 + len(callers)) as pool:
        placing = pool.submit(place_call, cluster, from_number=held, hold=25.0)
        node, address = wait_for(
            lambda: agi_session(cluster, held), timeout=30, interval=0.2, what="a caller in a menu"
        )
        assert address == f"127.0.0.{node + 1}:{cluster.agi_port}"  # server 1 of the pool
        out = run_hotline("cluster", "stop-agi", str(node), "1").stdout
        assert "killed" in out
        services = next(n for n in status()["nodes"] if n["name"] == f"node{node}")["services"]
        assert (services["agi"], services["agi2"]) == (False, True)

        # New calls, two on each node: all get the menu and press 4; on the killed server's
        # node the second server of its pool runs it.
        results = list(
            pool.map(lambda c: place_call(cluster, dtmf="4", from_number=c, hold=6.0), callers)
        )
        held_result = placing.result()
    assert all(r.answered for r in results), [r.detail for r in results]
    assert held_result.answered, held_result.detail

    db = Database(cluster.db_url)
    try:
        served = [ended_call(db, c) for c in callers]  # each logged once
        assert f"node{node}" in {call.node for call in served}
        for call in served:
            kinds = events_of(db, call)
            # The menu heard the key and routed the caller to a queue (the lift team; nobody
            # is logged in here, so the overflow decides which).
            assert (call.menu_choice, call.queue is not None) == ("4", True), (call.node, kinds)
            assert "menu_result" in kinds and "agi_failed" not in kinds, (call.node, kinds)
        # The caller whose menu died with its server: its session is lost (AGI ends as if
        # the script returned without a queue), and the dialplan's fail-safe puts them in
        # the coordinator's queue rather than hanging up.
        lost = ended_call(db, held)
        assert lost.node == f"node{node}"
        assert lost.queue == "coordinator"
        assert "agi_failed" in events_of(db, lost)
    finally:
        db.dispose()

    # The node's whole pool dead: its callers still reach the coordinator, and are logged
    # (by the router, from the fail-safe's event: no FastAGI server wrote them).
    run_hotline("cluster", "stop-agi", str(node), "2")
    late = ["+74956000021", "+74956000022"]  # one on each node
    assert all(r.answered for r in place_calls(cluster, late, hold=3.0))
    db = Database(cluster.db_url)
    try:
        rows = {c: ended_call(db, c) for c in late}
        (failed,) = [row for row in rows.values() if row.node == f"node{node}"]
        assert failed.queue == "coordinator" and "agi_failed" in events_of(db, failed)
    finally:
        db.dispose()

    # The drill ends: `up` starts the killed servers again.
    run_hotline("cluster", "up", "--nodes", "2", timeout=600)
    assert all(n["services"]["agi"] and n["services"]["agi2"] for n in status()["nodes"])


def test_a_dead_node_is_taken_out_and_new_calls_go_to_the_other(cluster: Settings) -> None:
    wait_for(lambda: dispatching("node1") and dispatching("node2"), what="both nodes in rotation")
    out = run_hotline("cluster", "stop-node", "1").stdout
    assert "killed" in out
    killed_at = time.monotonic()

    # At once, before any probe has noticed: each call meant for node 1 times out there and
    # Kamailio's failure route sends it on to node 2. Meanwhile node 1 leaves the rotation.
    callers = [f"+7495200000{i}" for i in range(2)]
    with ThreadPoolExecutor(max_workers=1) as pool:
        placing = pool.submit(place_calls, cluster, callers)
        # Asked straight over Kamailio's JSON-RPC: a `hotline` command takes seconds to start.
        wait_for(
            lambda: not in_rotation(cluster)["node1"],
            timeout=10,
            interval=0.1,
            what="node 1 out of rotation",
        )
        out_after = time.monotonic() - killed_at
        results = placing.result()
    assert all(r.answered for r in results), [r.detail for r in results]
    assert out_after < 5
    later = ["+74952000009"]
    assert all(r.answered for r in place_calls(cluster, later))

    db = Database(cluster.db_url)
    try:
        assert {ended_call(db, c).node for c in [*callers, *later]} == {"node2"}
    finally:
        db.dispose()
    st = status()
    assert [n["asterisk"] for n in st["nodes"]] == [False, True]


def test_a_node_back_up_rejoins_and_its_dead_calls_are_dropped_and_called_back(
    cluster: Settings,
) -> None:
    # `up` again starts what is down (node 1's Asterisk, killed above): its probe answers and
    # it is back in rotation.
    run_hotline("cluster", "up", "--nodes", "2", timeout=600)
    wait_for(
        lambda: all(in_rotation(cluster).values()), interval=0.1, what="node 1 back in rotation"
    )

    callers = ["+74953000001", "+74953000002"]
    db = Database(cluster.db_url)
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            placing = pool.submit(place_calls, cluster, callers, 15.0)

            def on_nodes() -> dict[str, str] | None:
                rows = [row for c in callers for row in calls_from(db, c)]
                found = {row.node: row.caller_number for row in rows if row.node}
                return found if len(found) == 2 else None

            by_node = wait_for(on_nodes, timeout=30, interval=0.2, what="one call on each node")
            run_hotline("cluster", "stop-node", "1")
            # The operator's drill ends: the node comes back and its router reconciles.
            run_hotline("cluster", "up", "--nodes", "2", timeout=600)
            assert all(r.answered for r in placing.result())

        dead = by_node["node1"]
        dropped = ended_call(db, dead)
        assert dropped.outcome == "dropped"
        with db.session() as session:
            entries = list(session.scalars(select(Callback).where(Callback.caller_number == dead)))
            assert [(e.status, e.reason) for e in entries] == [("open", "dropped")]
        survivor = ended_call(db, by_node["node2"])
        assert survivor.outcome != "dropped"
    finally:
        db.dispose()


def test_a_callback_from_the_dashboard_goes_out_through_a_live_node(cluster: Settings) -> None:
    operator = json.loads(
        run_hotline("operators", "add", "Cleo Cluster", "--queues", "heating", "--json").stdout
    )
    login, password = operator["sip_login"], operator["sip_password"]
    # `up` again renders the new roster on every node and reloads them.
    run_hotline("cluster", "up", "--nodes", "2", timeout=600)
    run_hotline("cluster", "stop-node", "1")
    wait_for(lambda: not in_rotation(cluster)["node1"], interval=0.1, what="node 1 out")
    token = json.loads(
        run_hotline("tokens", "create", "--role", "supervisor", "--name", "cluster", "--json")
        .stdout.strip()
        .splitlines()[-1]
    )["token"]
    resident = "+74955000001"
    db = Database(cluster.db_url)
    try:
        callback_id = open_callback(db, resident)
        with (
            # The operator registers through Kamailio, which finds them a live home node.
            Softphone(cluster, login, password) as op_phone,
            Softphone(cluster, resident, "", register=False, local_port=cluster.pstn_port) as home,
            httpx.Client(
                base_url=cluster.dashboard_url,
                headers={"Authorization": f"Bearer {token}"},
                timeout=20,
            ) as api,
        ):
            claim = api.post(f"/api/callbacks/{callback_id}/claim", json={"operator": login})
            assert claim.status_code == 200, claim.text
            # The dashboard's first AMI address is node 1's, which is dead: node 2 places it.
            started = api.post(f"/api/callbacks/{callback_id}/call", json={"operator": login})
            assert started.status_code == 202, started.text
            assert op_phone.wait_for_event("CALL_ESTABLISHED", timeout=30), op_phone.log[-2000:]
            assert home.wait_for_event("CALL_ESTABLISHED", timeout=30), home.log[-2000:]

            # The board merges both nodes' live state: node 1's router lost its Asterisk, so
            # its part is left out (stale) while node 2's stays live.
            def board_nodes() -> bool:
                snap = api.get("/api/wallboard").json()
                return {n["node"]: n["live"] for n in snap.get("nodes", [])} == {
                    "node1": False,
                    "node2": True,
                }

            wait_for(board_nodes, timeout=30, what="the wallboard: node 1 stale, node 2 live")
            home.hangup()
        call_id = started.json()["call_id"]
        wait_for(lambda: _answered(db, call_id), what="the callback answered in the call log")
        with db.session() as session:
            row = session.get(Call, call_id)
            # The row names the node whose AMI took the Originate (node 1's is dead).
            assert row is not None and row.node == "node2"
        assert status()["nodes"][0]["asterisk"] is False
    finally:
        db.dispose()


def _answered(db: Database, call_id: int) -> bool:
    with db.session() as session:
        call = session.get(Call, call_id)
        return call is not None and call.answered_at is not None
