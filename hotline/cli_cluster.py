"""`hotline cluster`: Kamailio in front of several Asterisk nodes on this machine."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from call_router.settings import get_settings
from hotline.cli_support import fail
from hotline.cluster.topology import DEFAULT_AGI_PER_NODE

app = typer.Typer(help="A local cluster: Kamailio in front of N Asterisk nodes.")


@app.command("up")
def cluster_up(
    nodes: Annotated[int, typer.Option(help="Asterisk nodes (127.0.0.2, 127.0.0.3, ...).")] = 2,
    agi_per_node: Annotated[
        int,
        typer.Option(
            help="FastAGI servers per node (server k of node i on 127.0.<k-1>.<i+1>); the "
            "node's dialplan tries them in turn, so a dead one costs no caller."
        ),
    ] = DEFAULT_AGI_PER_NODE,
) -> None:
    """Start Kamailio on the hotline's SIP address and N nodes behind it; returns once calls
    can be taken."""
    from hotline.asterisk.sandbox import Asterisk
    from hotline.cli_lifecycle import prepare_hotline
    from hotline.cluster import control, kamailio
    from hotline.cluster.topology import TopologyError

    settings = get_settings()
    login, password, admin_password = prepare_hotline(settings)
    Asterisk(settings).ensure_installed(progress=typer.echo)
    try:
        specs = control.up(settings, nodes, agi_per_node)
    except (control.ClusterError, kamailio.KamailioError, TopologyError) as exc:
        raise fail(f"error: {exc}") from None
    lines = [
        f"Hotline cluster is up: {len(specs)} nodes behind Kamailio, "
        f"{agi_per_node} FastAGI servers each.",
        f"  SIP edge:       {settings.sip_host}:{settings.sip_port} (Kamailio)",
        *(f"  {s.name}:          {s.address}:{s.sip_port}" for s in specs),
        f"  dashboard:      {settings.dashboard_url}/",
        f"  operator SIP:   login {login}, password {password}, "
        f"registrar {settings.sip_host}:{settings.sip_port} (UDP, through Kamailio)",
    ]
    if admin_password:
        lines.append(f"  dashboard user: admin, password {admin_password} (shown once)")
    lines.append("  stop:           hotline cluster down")
    typer.echo("\n".join(lines))


@app.command("down")
def cluster_down() -> None:
    """Stop Kamailio, every node and the dashboard."""
    from hotline.cluster import control

    control.down(get_settings())
    typer.echo("cluster stopped")


@app.command("status")
def cluster_status(
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
) -> None:
    """Kamailio, each node's Asterisk and services, and whether Kamailio sends calls there.
    Exit code 3 when nothing runs."""
    from hotline.cluster import control

    st = control.status(get_settings())
    if as_json:
        typer.echo(json.dumps(st.as_dict()))
    else:
        edge = f"running, pid {st.kamailio_pid}" if st.kamailio else "stopped"
        typer.echo(f"kamailio ({st.sip}): {edge}")
        for node in st.nodes:
            asterisk = f"pid {node.asterisk_pid}" if node.asterisk else "DOWN"
            calls = {True: "gets calls", False: "out of rotation", None: "-"}[node.dispatching]
            extra = " ".join(f"{k}={'up' if v else 'down'}" for k, v in node.services.items())
            typer.echo(f"{node.name} {node.address}: asterisk {asterisk}, {calls}, {extra}")
        typer.echo(f"dashboard: {'up' if st.dashboard else 'down'}")
    if not st.kamailio and not any(n.asterisk for n in st.nodes):
        raise typer.Exit(3)


@app.command("stop-node")
def cluster_stop_node(
    node: Annotated[int, typer.Argument(help="Node number (1 = 127.0.0.2).")],
) -> None:
    """Kill node N's Asterisk as a crash would (SIGKILL), for failover drills."""
    from hotline.cluster import control

    try:
        pid = control.stop_node(get_settings(), node)
    except control.ClusterError as exc:
        raise fail(f"error: {exc}") from None
    typer.echo(f"node{node}: asterisk pid {pid} killed" if pid else f"node{node}: not running")


@app.command("stop-agi")
def cluster_stop_agi(
    node: Annotated[int, typer.Argument(help="Node number (1 = 127.0.0.2).")],
    server: Annotated[int, typer.Argument(help="FastAGI server of that node (1, 2, ...).")] = 1,
) -> None:
    """Kill one FastAGI server as a crash would (SIGKILL), for drills: the node's dialplan
    takes new calls to the next server; `hotline cluster up` starts it again."""
    from hotline.cluster import control

    try:
        pid = control.stop_agi(get_settings(), node, server)
    except control.ClusterError as exc:
        raise fail(f"error: {exc}") from None
    where = f"node{node}: FastAGI server {server}"
    typer.echo(f"{where} pid {pid} killed" if pid else f"{where}: not running")
