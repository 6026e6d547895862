"""The cluster's SIP edge: Kamailio (Debian package `kamailio`, its dispatcher module).

Rendered from asterisk_conf/kamailio/*.j2 into `<state>/cluster/kamailio/`, started in the
foreground of its own session (`kamailio -DD -E`, pid in run/kamailio.pid), asked over its
JSON-RPC datagram socket (`dispatcher.list`: which node is up). Stop only ever signals the
recorded pid after checking it is our kamailio with our config.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from call_router.pid_files import cmdline
from call_router.settings import PROJECT_ROOT, Settings
from call_router.sip_bans import carrier_networks
from hotline.cluster.topology import NodeSpec, cluster_dir

TEMPLATES = PROJECT_ROOT / "asterisk_conf" / "kamailio"
SET_ID = 1
# ds_select_dst algorithm for residents' calls: 4, round-robin over the live nodes (each call
# costs a node about the same; 10, least calls, would need the dialog module on every call).
ALGORITHM = 4
# Seconds between OPTIONS probes of each node, and how long a node may take to answer a
# request before the next one is tried (loopback and a LAN answer in milliseconds).
PING_INTERVAL = 1
FR_TIMER_MS = 2000


class KamailioError(RuntimeError):
    """Kamailio is missing, would not start, or does not answer."""


@dataclass(frozen=True)
class Destination:
    """One node as the dispatcher sees it."""

    uri: str
    node: str
    up: bool
    flags: str


def folder(settings: Settings) -> Path:
    return cluster_dir(settings) / "kamailio"


def config_file(settings: Settings) -> Path:
    return folder(settings) / "kamailio.cfg"


def rpc_socket(settings: Settings) -> Path:
    return folder(settings) / "rpc.sock"


def pid_file(settings: Settings) -> Path:
    return settings.run_dir / "kamailio.pid"


def out_file(settings: Settings) -> Path:
    return settings.log_dir / "kamailio.out"


def binary() -> str | None:
    return shutil.which("kamailio") or next(
        (p for p in ("/usr/sbin/kamailio", "/sbin/kamailio") if Path(p).is_file()), None
    )


# Requests per 2 s from one (non-carrier) address above which the edge drops them: far above
# what a phone sends (a REGISTER per minute, a few per call), far below a scanner's rate.
PIKE_DENSITY = 30


def render(settings: Settings, nodes: Sequence[NodeSpec], children: int = 4) -> dict[str, str]:
    """{file name: text} of kamailio.cfg and dispatcher.list for these nodes."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - SIP proxy config, not HTML
    )
    where = folder(settings)
    context: dict[str, Any] = {
        "sip_host": settings.sip_host,
        "sip_port": settings.sip_port,
        "children": children,
        "rpc_socket": str(rpc_socket(settings)),
        "dispatcher_list": str(where / "dispatcher.list"),
        "set_id": SET_ID,
        "algorithm": ALGORITHM,
        "ping_interval": PING_INTERVAL,
        "fr_timer_ms": FR_TIMER_MS,
        # The carrier's networks (HOTLINE_PSTN_MATCH), as the single box's trunk ACL has them.
        "carrier_networks": ",".join(str(net) for net in carrier_networks(settings)),
        "edge_secret": settings.secrets["edge_secret"],
        # Failed sign-ins banned at the edge, with the single box's limits (sip_bans.py).
        "ban_threshold": settings.sip_ban_threshold,
        "ban_window": settings.sip_ban_window_seconds,
        "ban_seconds": settings.sip_ban_seconds,
        "pike_density": PIKE_DENSITY,
        "nodes": [{"name": n.name, "sip_host": n.address, "sip_port": n.sip_port} for n in nodes],
    }
    return {
        name: env.get_template(f"{name}.j2").render(context)
        for name in ("kamailio.cfg", "dispatcher.list")
    }


def write_config(settings: Settings, nodes: Sequence[NodeSpec]) -> Path:
    where = folder(settings)
    where.mkdir(parents=True, exist_ok=True)
    for name, text in render(settings, nodes).items():
        (where / name).write_text(text)
    return config_file(settings)


def check_config(settings: Settings) -> None:
    """`kamailio -c`: the rendered config parses and every module loads."""
    exe = _binary_or_fail()
    res = subprocess.run(
        [exe, "-c", "-Y", str(folder(settings)), "-f", str(config_file(settings))],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if res.returncode != 0:
        raise KamailioError(f"kamailio rejects {config_file(settings)}:\n{res.stderr[-2000:]}")


def _binary_or_fail() -> str:
    exe = binary()
    if exe is None:
        raise KamailioError(
            "kamailio is not installed: run scripts/install.sh (apt-get install kamailio)"
        )
    return exe


def running_pid(settings: Settings) -> int | None:
    """Our kamailio's pid, or None (none recorded, gone, or a reused pid that is not ours)."""
    try:
        pid = int(pid_file(settings).read_text().strip())
    except (OSError, ValueError):
        return None
    args = cmdline(pid)
    if args and Path(args[0]).name == "kamailio" and str(config_file(settings)) in args:
        return pid
    return None


def start(settings: Settings, timeout: float = 20) -> int:
    """Start Kamailio (unless it runs); return once it answers JSON-RPC."""
    existing = running_pid(settings)
    if existing:
        return existing
    exe = _binary_or_fail()
    check_config(settings)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        try:
            udp.bind((settings.sip_host, settings.sip_port))
        except OSError as err:
            raise KamailioError(
                f"SIP port {settings.sip_host}:{settings.sip_port}/udp is taken ({err.strerror}):"
                " is a single-box `hotline up` running? (`hotline down` first)"
            ) from None
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    rpc_socket(settings).unlink(missing_ok=True)
    argv = [exe, "-DD", "-E", "-Y", str(folder(settings)), "-f", str(config_file(settings))]
    with out_file(settings).open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pid_file(settings).write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pid_file(settings).unlink(missing_ok=True)
            raise KamailioError(
                f"kamailio exited with code {proc.returncode} while starting; see "
                f"{out_file(settings)}"
            )
        with contextlib.suppress(KamailioError):
            rpc(settings, "core.version", timeout=0.5)
            return proc.pid
        time.sleep(0.1)
    stop(settings)
    raise KamailioError(f"kamailio did not answer within {timeout:.0f}s; see {out_file(settings)}")


def stop(settings: Settings, timeout: float = 10) -> bool:
    """Stop our Kamailio (its whole process group); whether it was running."""
    pid = running_pid(settings)
    if pid is not None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.1)
            if not _alive(pid):
                break
    pid_file(settings).unlink(missing_ok=True)
    return pid is not None


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def rpc(settings: Settings, method: str, *params: Any, timeout: float = 2.0) -> Any:
    """One JSON-RPC call over Kamailio's datagram socket; its `result`."""
    request = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1}
    with tempfile.TemporaryDirectory(prefix="hotline-rpc-") as tmp:
        reply_to = str(Path(tmp) / "reply.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(reply_to)
            sock.settimeout(timeout)
            try:
                sock.sendto(json.dumps(request).encode(), str(rpc_socket(settings)))
                data = sock.recv(1 << 20)
            except OSError as err:
                raise KamailioError(f"kamailio JSON-RPC {method}: {err}") from None
    reply = json.loads(data)
    if "error" in reply:
        raise KamailioError(f"kamailio JSON-RPC {method}: {reply['error']}")
    return reply.get("result")


def destinations(settings: Settings) -> list[Destination]:
    """The dispatcher's nodes and whether each is up (flags AP: active and probing)."""
    result = rpc(settings, "dispatcher.list")
    found = []
    for record in result.get("RECORDS", []):
        for target in record.get("SET", {}).get("TARGETS", []):
            dest = target.get("DEST", {})
            flags = str(dest.get("FLAGS", ""))
            attrs = dest.get("ATTRS", {})
            found.append(
                Destination(
                    uri=str(dest.get("URI", "")),
                    node=str(attrs.get("DUID", "")) if isinstance(attrs, dict) else "",
                    up=flags.startswith("A"),
                    flags=flags,
                )
            )
    return found
