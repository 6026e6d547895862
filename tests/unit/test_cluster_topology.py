"""The local cluster's layout and Kamailio's rendered config (no processes started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from call_router.settings import Settings
from hotline.cluster import kamailio
from hotline.cluster.topology import TopologyError, plan
from tests.conftest import require


def settings(tmp_path: Path, **values: object) -> Settings:
    base: dict[str, object] = {
        "state_dir": tmp_path,
        "sip_port": 18060,
        "rtp_start": 18100,
        "rtp_end": 18499,
        "redis_prefix": "hotline-test",
        "database_url": "postgresql+psycopg://127.0.0.1/hotline",
    }
    return Settings(**{**base, **values})  # type: ignore[arg-type]


def test_each_node_has_its_own_address_state_and_rtp_share(tmp_path: Path) -> None:
    nodes = plan(settings(tmp_path), 3)
    assert [n.address for n in nodes] == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    assert [n.name for n in nodes] == ["node1", "node2", "node3"]
    assert len({n.state_dir for n in nodes}) == 3
    ranges = [(int(n.overrides["rtp_start"]), int(n.overrides["rtp_end"])) for n in nodes]
    assert ranges == [(18100, 18232), (18233, 18365), (18366, 18498)]
    for node in nodes:
        ns = node.settings()
        assert (ns.sip_host, ns.ami_host, ns.agi_host) == (node.address,) * 3
        assert ns.sip_port == 18060
        assert ns.node == node.name
        # One database for every node; live state kept apart per node.
        assert ns.db_url == "postgresql+psycopg://127.0.0.1/hotline"
        assert ns.redis_prefix == f"hotline-test-{node.name}"
        # Kamailio (the single box's SIP address) is the carrier for every node.
        assert "127.0.0.1" in ns.pstn_match.split(",")
        assert node.environment()["HOTLINE_NODE"] == node.name


def test_each_node_has_a_pool_of_fastagi_servers_on_addresses_of_their_own(
    tmp_path: Path,
) -> None:
    nodes = plan(settings(tmp_path, agi_port=18073), 2, agi_per_node=3)
    pools = [n.settings().agi_addresses for n in nodes]
    assert pools == [
        ["127.0.0.2:18073", "127.0.1.2:18073", "127.0.2.2:18073"],
        ["127.0.0.3:18073", "127.0.1.3:18073", "127.0.2.3:18073"],
    ]
    # Server 1 is the node's own address, as on a single box.
    assert all(n.settings().agi_host == n.address for n in nodes)
    assert {n.settings().agi_local_servers for n in nodes} == {3}
    # Processes get the pool as JSON in the environment, which pydantic-settings decodes.
    env = nodes[0].environment()
    assert env["HOTLINE_AGI_POOL"].startswith('["127.0.0.2:18073"')
    with pytest.raises(TopologyError, match="agi-per-node"):
        plan(settings(tmp_path), 2, agi_per_node=0)


def test_a_sqlite_cluster_shares_the_single_box_file(tmp_path: Path) -> None:
    nodes = plan(settings(tmp_path, database_url=None), 2)
    assert {n.settings().db_url for n in nodes} == {f"sqlite:///{tmp_path / 'hotline.db'}"}


@pytest.mark.parametrize("count", [0, 17])
def test_node_count_is_bounded(tmp_path: Path, count: int) -> None:
    with pytest.raises(TopologyError):
        plan(settings(tmp_path), count)


def test_the_edge_may_not_sit_on_a_node_address(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="sip_host"):
        plan(settings(tmp_path, sip_host="127.0.0.3"), 2)


def test_dispatcher_list_names_every_node(tmp_path: Path) -> None:
    s = settings(tmp_path)
    files = kamailio.render(s, plan(s, 2))
    targets = [line for line in files["dispatcher.list"].splitlines() if line[:1].isdigit()]
    assert targets == [
        "1 sip:127.0.0.2:18060 0 0 duid=node1",
        "1 sip:127.0.0.3:18060 0 0 duid=node2",
    ]
    cfg = files["kamailio.cfg"]
    assert "listen = udp:127.0.0.1:18060" in cfg
    assert 'modparam("dispatcher", "ds_ping_interval", 1)' in cfg
    assert f'ds_select_dst("1", "{kamailio.ALGORITHM}")' in cfg


def test_kamailio_accepts_the_rendered_config(tmp_path: Path) -> None:
    require(kamailio.binary() is not None, "kamailio is not installed (scripts/install.sh)")
    s = settings(tmp_path)
    kamailio.write_config(s, plan(s, 2))
    kamailio.check_config(s)
    broken = kamailio.config_file(s)
    broken.write_text(broken.read_text().replace("request_route {", "request_route {{"))
    with pytest.raises(kamailio.KamailioError):
        kamailio.check_config(s)


def test_a_made_up_dialog_skips_no_check_at_the_edge(tmp_path: Path) -> None:
    # Found by playing attacker (2026-12-06): a To-tag sent any request into the in-dialog
    # branch before the ban and flood checks, and loose_route() relayed it wherever its Route
    # said: a banned address kept guessing passwords (a REGISTER with a To-tag is registered
    # like any other by Asterisk), and the edge relayed for anyone from the carrier's trusted
    # address.
    s = settings(tmp_path)
    cfg = kamailio.render(s, plan(s, 2))["kamailio.cfg"]
    route = cfg[cfg.index("request_route {") :]
    in_dialog_starts = route.index("has_totag()")
    assert route.index("$sht(ipban=>$si)") < in_dialog_starts
    assert route.index("pike_check_req()") < in_dialog_starts
    assert 'if (has_totag() && !is_method("REGISTER")) {' in route
    in_dialog = route[in_dialog_starts : route.index("t_check_trans();\n")]
    # The next hop of a dialog request from outside must be a node.
    assert 'ds_is_from_list("1", "2", "$var(hop)")' in in_dialog
    assert "loose_route() || is_method" not in in_dialog  # no ACK relayed on its own say-so
    assert "if (t_check_trans()) {\n\t\t\t\tt_relay();" in in_dialog
