"""Who listens where in a local cluster (pure: settings in, plain values out).

Node i (1-based) is a whole single-box hotline minus the dashboard: its own state folder
(`<state>/cluster/node<i>`), its own loopback address (127.0.0.<i+1>) for SIP, AMI, FastAGI
and AudioSocket on the single box's port numbers, and a share of the RTP range. Its pool of
FastAGI servers listens on 127.0.<k-1>.<i+1> (server k), the same ports. Every node
writes the one database and reads the one Redis of the cluster's own settings. Kamailio takes
the single box's SIP address, so carriers, `hotline call` and softphones need no change.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

from call_router.settings import Settings

MAX_NODES = 16
# FastAGI servers per node (the pool the node's dialplan tries in turn, docs: ARCHITECTURE.md).
DEFAULT_AGI_PER_NODE = 2
MAX_AGI_PER_NODE = 8
# Node i's address: this network's host i + 1 (127.0.0.2, 127.0.0.3, ...: all local on Linux).
NODE_NETWORK = ipaddress.ip_network("127.0.0.0/24")


class TopologyError(ValueError):
    """The settings leave no room for the cluster asked for."""


@dataclass(frozen=True)
class NodeSpec:
    index: int
    name: str
    address: str
    state_dir: Path
    # HOTLINE_* settings of this node, by field name (the values its processes get).
    overrides: dict[str, str]

    @property
    def sip_port(self) -> int:
        return int(self.overrides["sip_port"])

    def environment(self) -> dict[str, str]:
        """The overrides as HOTLINE_* environment variables (for its processes)."""
        return {f"HOTLINE_{key.upper()}": value for key, value in self.overrides.items()}

    def settings(self) -> Settings:
        """This node's settings: the cluster's, with the overrides on top."""
        values: dict[str, object] = dict(self.overrides)
        # A list, passed as JSON in the environment (as pydantic-settings reads it there).
        values["agi_pool"] = json.loads(self.overrides["agi_pool"])
        return Settings(**values)  # type: ignore[arg-type]

    @property
    def agi_servers(self) -> int:
        return int(self.overrides["agi_local_servers"])


def cluster_dir(settings: Settings) -> Path:
    return settings.state_dir / "cluster"


def node_address(index: int) -> str:
    return str(NODE_NETWORK.network_address + index + 1)


def agi_address(index: int, server: int) -> str:
    """Where node `index`'s FastAGI server `server` (1-based) listens: server 1 on the node's
    address, server k on 127.0.(k-1).(index+1), as if each were a box of its own (same
    ports; AudioSocket on the same host, so a call's audio reaches the process running its
    menu)."""
    return str(NODE_NETWORK.network_address + 256 * (server - 1) + index + 1)


def plan(
    settings: Settings, nodes: int, agi_per_node: int = DEFAULT_AGI_PER_NODE
) -> list[NodeSpec]:
    """The nodes of a cluster of `nodes` Asterisk boxes behind the settings' SIP address,
    each with a pool of `agi_per_node` FastAGI servers."""
    if not 1 <= nodes <= MAX_NODES:
        raise TopologyError(f"--nodes must be 1..{MAX_NODES}, got {nodes}")
    if not 1 <= agi_per_node <= MAX_AGI_PER_NODE:
        raise TopologyError(f"--agi-per-node must be 1..{MAX_AGI_PER_NODE}, got {agi_per_node}")
    addresses = [node_address(i) for i in range(1, nodes + 1)]
    for name in ("sip_host", "ami_host", "agi_host"):
        if getattr(settings, name) in addresses:
            raise TopologyError(
                f"{name} {getattr(settings, name)} is a node's address: use 127.0.0.1 or a "
                "routable address for the cluster's edge"
            )
    span = (settings.rtp_end - settings.rtp_start + 1) // nodes
    if span < 20:
        raise TopologyError(
            f"the RTP range {settings.rtp_start}-{settings.rtp_end} is too small for {nodes} nodes"
        )
    # Residents' calls reach every node from the edge's address: it is the carrier there.
    carriers = [c.strip() for c in settings.pstn_match.split(",") if c.strip()]
    if settings.sip_host not in carriers:
        carriers.append(settings.sip_host)
    specs = []
    for i, address in enumerate(addresses, start=1):
        state = cluster_dir(settings) / f"node{i}"
        rtp_start = settings.rtp_start + (i - 1) * span
        overrides = {
            "node": f"node{i}",
            "state_dir": str(state),
            "database_url": settings.db_url,
            "redis_url": settings.redis_url,
            # Live state per node (one router's rebuild must not wipe another's calls); the
            # dashboard merges them all (settings.node_ami_hosts).
            "redis_prefix": settings.node_redis_prefix(f"node{i}"),
            "recordings_dir": str(settings.recordings_dir),
            "flows_dir": str(settings.flows_dir),
            "sip_host": address,
            "sip_port": str(settings.sip_port),
            "pstn_match": ",".join(carriers),
            "ami_host": address,
            "ami_port": str(settings.ami_port),
            "agi_host": address,
            "agi_port": str(settings.agi_port),
            "agi_pool": json.dumps(
                [f"{agi_address(i, k)}:{settings.agi_port}" for k in range(1, agi_per_node + 1)]
            ),
            "agi_local_servers": str(agi_per_node),
            "audiosocket_host": address,
            "audiosocket_port": str(settings.audiosocket_port),
            "rtp_start": str(rtp_start),
            "rtp_end": str(rtp_start + span - 1),
        }
        specs.append(NodeSpec(i, f"node{i}", address, state, overrides))
    return specs
