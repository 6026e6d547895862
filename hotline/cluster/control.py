"""`hotline cluster up|down|status|stop-node|stop-agi`: Kamailio plus N Asterisk nodes on one
machine.

Each node is what `hotline up` runs on one box (Asterisk, a pool of FastAGI servers, router,
and a supervisor that restarts those), with the node's own settings (topology.py); the
dashboard runs once, with the cluster's settings, on the one database. cluster.json in the
cluster folder remembers how many nodes (and FastAGI servers each) `up` started, for `down`,
`status` and the drills.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from call_router.pid_files import read_pid
from call_router.settings import Settings
from hotline import services
from hotline.asterisk.sandbox import Asterisk
from hotline.cluster import kamailio
from hotline.cluster.topology import DEFAULT_AGI_PER_NODE, NodeSpec, cluster_dir, plan

# The services of a node besides its FastAGI pool (agi, agi2, ...: services.pool_servers);
# the dashboard is the cluster's, not a node's.
NODE_SERVICES = ("agi", "router")


def node_services(node: Settings) -> tuple[str, ...]:
    return (*services.pool_servers(node), *NODE_SERVICES[1:])


SUPERVISOR = "supervise"
DASHBOARD = "dashboard"


class ClusterError(RuntimeError):
    """The cluster cannot be started, found or changed as asked."""


@dataclass
class NodeStatus:
    name: str
    address: str
    asterisk: bool
    asterisk_pid: int | None
    # Whether Kamailio currently sends calls there (its OPTIONS probe answered).
    dispatching: bool | None
    services: dict[str, bool] = field(default_factory=dict)


@dataclass
class ClusterStatus:
    nodes: list[NodeStatus]
    kamailio: bool
    kamailio_pid: int | None
    sip: str
    dashboard: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def state_file(settings: Settings) -> Path:
    return cluster_dir(settings) / "cluster.json"


def recorded_nodes(settings: Settings) -> list[NodeSpec]:
    """The nodes `up` started (none if it never ran)."""
    try:
        recorded = json.loads(state_file(settings).read_text())
        count = int(recorded["nodes"])
        # Clusters started before the FastAGI pool had one server per node.
        agi_per_node = int(recorded.get("agi_per_node", 1))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []
    return plan(settings, count, agi_per_node)


def _prepare_node(settings: Settings, spec: NodeSpec) -> Settings:
    """The node's state folder, with the cluster's secrets (one AMI secret set, one device
    key: any process may talk to any node) and the node's rendered Asterisk config."""
    from hotline.cli_asterisk import render_asterisk

    spec.state_dir.mkdir(parents=True, exist_ok=True)
    secrets = settings.state_dir / "secrets.json"
    settings.secrets  # noqa: B018 - made on first use
    target = spec.state_dir / "secrets.json"
    shutil.copyfile(secrets, target)
    os.chmod(target, 0o600)
    node = spec.settings()
    render_asterisk(node)
    return node


def up(settings: Settings, nodes: int, agi_per_node: int = DEFAULT_AGI_PER_NODE) -> list[NodeSpec]:
    """Start Kamailio and `nodes` nodes, each with `agi_per_node` FastAGI servers
    (idempotent: what runs is left running)."""
    specs = plan(settings, nodes, agi_per_node)
    previous = recorded_nodes(settings)
    if (
        previous
        and (len(previous), previous[0].agi_servers) != (nodes, agi_per_node)
        and any(_asterisk(settings, s) for s in previous)
    ):
        raise ClusterError(
            f"a cluster of {len(previous)} nodes with {previous[0].agi_servers} FastAGI "
            "servers each runs: `hotline cluster down` first"
        )
    if kamailio.binary() is None:
        raise ClusterError("kamailio is not installed: run scripts/install.sh")
    cluster_dir(settings).mkdir(parents=True, exist_ok=True)
    state_file(settings).write_text(json.dumps({"nodes": nodes, "agi_per_node": agi_per_node}))
    from hotline.cli_asterisk import reload_asterisk

    started: list[tuple[NodeSpec, Settings]] = []
    for spec in specs:
        node = _prepare_node(settings, spec)
        # Already running: the re-rendered roster and bans apply at once.
        reload_asterisk(node)
        env = spec.environment()
        # The node's supervisor restarts its FastAGI server and router, never a dashboard.
        services.hold(node, DASHBOARD)
        for name in node_services(node):
            services.start_service(node, name, env)
        Asterisk(node).start()
        started.append((spec, node))
    for spec, node in started:
        for name in node_services(node):
            services.wait_ready(node, name, timeout=60)
        services.start_service(node, SUPERVISOR, spec.environment())
    kamailio.write_config(settings, specs)
    kamailio.start(settings)
    # The dashboard once, on the cluster's settings; its supervisor leaves the single box's
    # FastAGI server and router down (they are the nodes').
    for name in NODE_SERVICES:
        services.hold(settings, name)
    env = dashboard_environment(specs)
    services.start_service(settings, DASHBOARD, env)
    services.wait_ready(settings, DASHBOARD, timeout=60)
    services.start_service(settings, SUPERVISOR, env)
    return specs


def dashboard_environment(specs: list[NodeSpec]) -> dict[str, str]:
    """The dashboard's AMI: the first node, then the others when it does not answer, so
    click-to-call and queue actions go through a node that is up; and every node by name, so
    it merges their live state and knows which node took a click-to-call."""
    return {
        "HOTLINE_AMI_HOST": specs[0].address,
        "HOTLINE_AMI_FALLBACK_HOSTS": json.dumps([s.address for s in specs[1:]]),
        "HOTLINE_NODE_AMI_HOSTS": json.dumps({s.name: s.address for s in specs}),
    }


def down(settings: Settings) -> None:
    """Stop everything `up` started; safe to re-run."""
    services.stop_service(settings, SUPERVISOR)
    services.stop_service(settings, DASHBOARD)
    kamailio.stop(settings)
    for spec in recorded_nodes(settings):
        node = spec.settings()
        services.stop_service(node, SUPERVISOR)
        Asterisk(node).stop()
        for name in reversed(node_services(node)):
            services.stop_service(node, name)


def _node(settings: Settings, index: int) -> NodeSpec:
    specs = recorded_nodes(settings)
    if not specs:
        raise ClusterError("no cluster was started here (`hotline cluster up --nodes N`)")
    if not 1 <= index <= len(specs):
        raise ClusterError(f"node {index}: the cluster has nodes 1..{len(specs)}")
    return specs[index - 1]


def _asterisk(settings: Settings, spec: NodeSpec) -> int | None:
    # Checked to be this node's asterisk (its own config path), not just any process.
    return Asterisk(spec.settings()).pid()


def stop_node(settings: Settings, index: int) -> int | None:
    """Kill node `index`'s Asterisk the way a crash would (SIGKILL, no clean-up); its pid, or
    None if it was not running. Its FastAGI server and router stay up, as after a crash.

    Returns only once the process is gone: a busy machine can take seconds to reap it, and an
    `up` run while it lingers would take it for running and not start the node again."""
    asterisk = Asterisk(_node(settings, index).settings())
    pid = asterisk.kill(timeout=60)
    if asterisk.pid() is not None:
        raise ClusterError(f"node {index}: asterisk (pid {pid}) is still running after SIGKILL")
    return pid


def stop_agi(settings: Settings, index: int, server: int) -> int | None:
    """Kill FastAGI server `server` of node `index` the way a crash would (SIGKILL); its pid,
    or None if it was not running. Marked held first, so its supervisor leaves it down for
    the drill; `hotline cluster up` starts it again."""
    node = _node(settings, index).settings()
    names = services.pool_servers(node)
    if not 1 <= server <= len(names):
        raise ClusterError(f"FastAGI server {server}: node{index} has servers 1..{len(names)}")
    name = names[server - 1]
    pid = read_pid(node, name)
    services.hold(node, name)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pid


def status(settings: Settings) -> ClusterStatus:
    specs = recorded_nodes(settings)
    kamailio_pid = kamailio.running_pid(settings)
    dispatching: dict[str, bool] = {}
    if kamailio_pid is not None:
        with contextlib.suppress(kamailio.KamailioError, ValueError):
            dispatching = {d.node: d.up for d in kamailio.destinations(settings)}
    nodes = []
    for spec in specs:
        node = spec.settings()
        pid = _asterisk(settings, spec)
        nodes.append(
            NodeStatus(
                name=spec.name,
                address=spec.address,
                asterisk=pid is not None,
                asterisk_pid=pid,
                dispatching=dispatching.get(spec.name) if kamailio_pid else None,
                services={
                    name: services.status(node, name).running
                    for name in (*node_services(node), SUPERVISOR)
                },
            )
        )
    return ClusterStatus(
        nodes=nodes,
        kamailio=kamailio_pid is not None,
        kamailio_pid=kamailio_pid,
        sip=f"{settings.sip_host}:{settings.sip_port}",
        dashboard=services.status(settings, DASHBOARD).running,
    )
