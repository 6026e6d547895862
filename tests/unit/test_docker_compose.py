"""docker-compose.yml agrees with the Settings defaults and keeps secrets out of the repo.

Docker itself does not run here: this reads the files the way Compose would (YAML with
anchors and merge keys) and checks what a wrong edit would silently break in production.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from call_router.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKER = ROOT / "docker"
PYTHON_SERVICES = {"agi": "agi", "router": "router", "dashboard": "dashboard"}
TELEPHONY = ("asterisk", "agi", "router", "dashboard")
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*)(?P<op>:?[-?+])?(?P<rest>[^}]*)\}")


def default(field: str) -> Any:
    """The coded default, whatever the developer's environment or hotline.toml says."""
    return Settings.model_fields[field].get_default(call_default_factory=True)


def resolve(value: str) -> str:
    """Compose interpolation with an empty environment: `${X:-d}` gives d, `${X:?m}` stays."""

    def sub(match: re.Match[str]) -> str:
        if match.group("op") in (":-", "-"):
            return match.group("rest")
        return match.group(0)

    return INTERPOLATION.sub(sub, value)


def with_required_filled(value: str) -> str:
    """`${X:?message}` (must be set at deploy time) becomes a `from-env-X` placeholder."""
    return INTERPOLATION.sub(
        lambda m: f"from-env-{m['name']}" if m.group("op") in (":?", "?") else m.group(0), value
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def env(service: dict[str, Any]) -> dict[str, str]:
    return {k: resolve(str(v)) for k, v in (service.get("environment") or {}).items()}


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Named volume -> mount path."""
    result = {}
    for entry in service.get("volumes") or []:
        source, target = str(entry).split(":")[:2]
        result[source] = target
    return result


def published(service: dict[str, Any]) -> list[str]:
    return [str(p) for p in service.get("ports") or []]


def test_every_part_of_the_hotline_is_a_service(services: dict[str, Any]) -> None:
    assert {"asterisk", "agi", "router", "dashboard", "redis", "postgres"} <= set(services)


def test_python_services_share_one_image_and_run_the_hotline_cli(
    services: dict[str, Any],
) -> None:
    images = {services[name]["image"] for name in PYTHON_SERVICES}
    assert len(images) == 1
    for name, command in PYTHON_SERVICES.items():
        service = services[name]
        assert service["build"]["dockerfile"] == "docker/python.Dockerfile"
        assert service["command"] == [command]
    dockerfile = (DOCKER / "python.Dockerfile").read_text()
    assert 'ENTRYPOINT ["hotline"]' in dockerfile


def test_asterisk_image_comes_from_debian_packages_and_renders_its_config(
    services: dict[str, Any],
) -> None:
    asterisk = services["asterisk"]
    dockerfile_path = ROOT / asterisk["build"]["dockerfile"]
    dockerfile = dockerfile_path.read_text()
    entry = DOCKER / "asterisk-entrypoint.sh"

    froms = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert froms == ["debian:sid-slim"]
    assert re.search(r"apt-get install[^&]*\basterisk\b", dockerfile)
    assert "asterisk-core-sounds-ru" in dockerfile and "asterisk-core-sounds-en" in dockerfile
    assert entry.name in dockerfile
    assert os.access(entry, os.X_OK)
    script = entry.read_text()
    assert "hotline asterisk render" in script
    assert "exec asterisk -f" in script
    # The same allocator bound as the sandbox's (HOTLINE_ASTERISK_MALLOC_ARENA_MAX).
    assert 'export MALLOC_ARENA_MAX="$arenas"' in script
    arenas = default("asterisk_malloc_arena_max")
    assert f"HOTLINE_ASTERISK_MALLOC_ARENA_MAX:-{arenas}}}" in script
    # ... and the same allocator: jemalloc from the image's packages, preloaded.
    assert f"HOTLINE_ASTERISK_ALLOCATOR:-{default('asterisk_allocator')}}}" in script
    assert 'export LD_PRELOAD="$lib"' in script and "libjemalloc.so.2" in script
    assert re.search(r"apt-get install[^&]*\blibjemalloc2\b", dockerfile)


def test_telephony_runs_on_the_host_network_with_the_default_ports(
    services: dict[str, Any],
) -> None:
    wanted = {
        "HOTLINE_SIP_PORT": default("sip_port"),
        "HOTLINE_AMI_PORT": default("ami_port"),
        "HOTLINE_AGI_PORT": default("agi_port"),
        "HOTLINE_DASHBOARD_PORT": default("dashboard_port"),
        "HOTLINE_RTP_START": default("rtp_start"),
        "HOTLINE_RTP_END": default("rtp_end"),
    }
    for name in TELEPHONY:
        service = services[name]
        assert service.get("network_mode") == "host", name
        assert published(service) == [], f"{name}: host network publishes nothing"
        values = env(service)
        assert {k: int(values[k]) for k in wanted} == wanted, name
        # AMI and AGI stay internal; the dashboard has no accounts yet.
        assert values["HOTLINE_AMI_HOST"] == "127.0.0.1"
        assert values["HOTLINE_AGI_HOST"] == "127.0.0.1"
        assert values["HOTLINE_DASHBOARD_HOST"] == default("dashboard_host") == "127.0.0.1"


def test_every_long_running_service_is_restarted_when_it_dies(
    services: dict[str, Any],
) -> None:
    # A crashed or OOM-killed FastAGI server, router, dashboard (or a dependency) comes back.
    for name in (*TELEPHONY, "postgres", "redis"):
        assert services[name].get("restart") == "unless-stopped", name
    assert services["migrate"]["restart"] == "no", "a one-shot job is not restarted"


def test_dashboard_healthcheck_asks_the_dashboard_port(services: dict[str, Any]) -> None:
    test = " ".join(services["dashboard"]["healthcheck"]["test"])
    port = default("dashboard_port")

    assert f"http://127.0.0.1:{port}/healthz" in test


def test_nothing_publishes_ami_or_agi(services: dict[str, Any]) -> None:
    internal = {str(default("ami_port")), str(default("agi_port"))}
    for name, service in services.items():
        for mapping in published(service):
            host_port = mapping.split(":")[-2] if mapping.count(":") >= 1 else mapping
            assert host_port not in internal, f"{name} publishes {mapping}"


def test_redis_and_postgres_are_on_loopback_where_the_settings_look(
    services: dict[str, Any],
) -> None:
    redis_default = urlsplit(default("redis_url"))
    assert published(services["redis"]) == [f"127.0.0.1:{redis_default.port}:6379"]
    assert published(services["postgres"]) == ["127.0.0.1:5432:5432"]
    for name in TELEPHONY:
        assert env(services[name])["HOTLINE_REDIS_URL"] == default("redis_url"), name


def test_every_service_that_needs_the_database_gets_its_url(
    services: dict[str, Any],
) -> None:
    pg = services["postgres"]["environment"]
    for name in (*TELEPHONY, "migrate"):
        url = urlsplit(with_required_filled(env(services[name])["HOTLINE_DATABASE_URL"]))
        assert url.scheme == "postgresql+psycopg", name
        assert (url.hostname, url.port) == ("127.0.0.1", 5432), name
        assert url.username == pg["POSTGRES_USER"]
        assert url.path == f"/{pg['POSTGRES_DB']}"
        # The password is interpolated from the environment, never written down.
        assert url.password == "from-env-POSTGRES_PASSWORD", name


def test_migrations_run_once_before_anything_uses_the_database(
    services: dict[str, Any],
) -> None:
    assert services["migrate"]["command"] == ["db", "upgrade"]
    for name in TELEPHONY:
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name


def test_postgres_keeps_its_data_in_a_named_volume(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    assert mounts(services["postgres"]) == {"pgdata": "/var/lib/postgresql/data"}
    assert "pgdata" in compose["volumes"]


def test_recordings_and_state_volumes_are_shared_at_the_configured_paths(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    for name in ("asterisk", "agi", "dashboard"):
        recordings_dir = env(services[name])["HOTLINE_RECORDINGS_DIR"]
        assert mounts(services[name]).get("recordings") == recordings_dir, name
    # The AMI secrets are generated into the state dir by the asterisk container's render and
    # read from there by the router, the AGI server and the dashboard (click-to-call, agent
    # control), which therefore start after asterisk is healthy.
    for name in ("asterisk", "agi", "router", "dashboard"):
        state_dir = env(services[name])["HOTLINE_STATE_DIR"]
        assert mounts(services[name]).get("state") == state_dir, name
    asterisk_check = services["asterisk"]["healthcheck"]["test"]
    assert f"{env(services['asterisk'])['HOTLINE_STATE_DIR']}/asterisk/etc/asterisk.conf" in (
        asterisk_check
    )
    assert {"recordings", "state"} <= set(compose["volumes"])
    for name in ("agi", "router", "dashboard"):
        assert services[name]["depends_on"]["asterisk"]["condition"] == "service_healthy", name


def test_the_dashboard_reads_the_run_files_the_other_services_write(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    # /healthz reads the router's router-health.json and the flows page flows.json, both in
    # settings.run_dir (<state dir>/run): every service sees one run volume there, the
    # dashboard read-only.
    for name in ("asterisk", "agi", "router", "dashboard"):
        run_dir = f"{env(services[name])['HOTLINE_STATE_DIR']}/run"
        assert mounts(services[name]).get("run") == run_dir, name
    dashboard_run = [str(v) for v in services["dashboard"]["volumes"] if str(v).startswith("run:")]
    assert dashboard_run == [f"run:{env(services['dashboard'])['HOTLINE_STATE_DIR']}/run:ro"]
    assert "run" in compose["volumes"]
    # An empty named volume takes the owner of the image's folder it is mounted on: without
    # the folder in the images it would be root's, and the router (uid 10001) could not write.
    for image in ("python.Dockerfile", "asterisk.Dockerfile"):
        dockerfile = (DOCKER / image).read_text()
        assert "install -d -o hotline -g hotline" in dockerfile, image
        assert "/var/lib/hotline/state/run" in dockerfile, image


def _strings(node: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(node, dict):
        return [pair for k, v in node.items() for pair in _strings(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [pair for i, v in enumerate(node) for pair in _strings(v, f"{path}[{i}]")]
    return [(path, str(node))]


def test_no_secret_is_committed(compose: dict[str, Any]) -> None:
    secretish = re.compile(r"(PASSWORD|SECRET|TOKEN|_KEY)$", re.IGNORECASE)
    for path, value in _strings(compose):
        key = path.rsplit(".", 1)[-1]
        if secretish.search(key):
            assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value), f"{path} must come from .env"
        # No credentials inside URLs either, except the interpolated one.
        for url in re.findall(r"\w+://[^\s\"']+", with_required_filled(value)):
            password = urlsplit(url).password
            assert password is None or password.startswith("from-env-"), path
    example = (DOCKER / "env.example").read_text()
    assert re.search(r"^POSTGRES_PASSWORD=$", example, flags=re.MULTILINE)
    for ignore in ("python.Dockerfile.dockerignore", "asterisk.Dockerfile.dockerignore"):
        lines = (DOCKER / ignore).read_text().splitlines()
        assert ".env" in lines and ".git" in lines, ignore


def test_every_service_that_reads_the_menus_mounts_the_one_flows_folder(
    services: dict[str, Any],
) -> None:
    # Prompts are built from the flows (asterisk), run (agi) and shown (dashboard): one folder
    # of the checkout, read-only, so a menu change needs no image rebuild.
    for name in ("asterisk", "agi", "dashboard"):
        flows_dir = env(services[name])["HOTLINE_FLOWS_DIR"]
        assert f"./ivr_flows:{flows_dir}:ro" in [str(v) for v in services[name]["volumes"]], name
    assert (ROOT / "ivr_flows" / "hotline.yaml").is_file()


def test_the_images_carry_the_programs_the_code_runs() -> None:
    python_image = (DOCKER / "python.Dockerfile").read_text()
    # Incidents are synthesised where they are created (the dashboard); audio is converted.
    assert re.search(r"apt-get install[^&]*\bespeak-ng\b", python_image)
    assert re.search(r"apt-get install[^&]*\bffmpeg\b", python_image)
    asterisk_image = (DOCKER / "asterisk.Dockerfile").read_text()
    # The same `ru` sounds link as the sandbox root's (hotline/asterisk/sandbox_root.py fix_root).
    assert "ln -s ru_RU_f_IvrvoiceRU /usr/share/asterisk/sounds/ru" in asterisk_image
    sandbox = (ROOT / "hotline" / "asterisk" / "sandbox_root.py").read_text()
    assert 'ru.symlink_to("ru_RU_f_IvrvoiceRU")' in sandbox


def test_each_python_service_has_a_health_check_that_names_real_checks(
    services: dict[str, Any],
) -> None:
    from call_router.health import CHECK_NAMES

    for name, check in (("agi", "fastagi"), ("router", "ami_link")):
        test = services[name]["healthcheck"]["test"]
        assert test == ["CMD", "hotline", "status", "--check", check], name
        assert check in CHECK_NAMES


# --- the cluster profile -----------------------------------------------------------------------

NODES = ("node1", "node2")
CLUSTER_NODE_SERVICES = {
    f"{kind}-{i}": node
    for i, node in enumerate(NODES, start=1)
    for kind in ("asterisk", "agi", "router")
}
CLUSTER = ("kamailio", *CLUSTER_NODE_SERVICES, "cluster-dashboard")


def cluster_plan(services: dict[str, Any]) -> list[Any]:
    """What `hotline cluster up --nodes 2` plans for the settings the compose file gives."""
    from hotline.cluster.topology import plan

    values = env(services["migrate"])
    settings = Settings(
        state_dir=Path(values["HOTLINE_STATE_DIR"]),
        rtp_start=int(values["HOTLINE_RTP_START"]),
        rtp_end=int(values["HOTLINE_RTP_END"]),
        redis_prefix=values["HOTLINE_REDIS_PREFIX"],
        sip_host=values["HOTLINE_SIP_HOST"],
        pstn_match=default("pstn_match"),
    )
    return plan(settings, len(NODES))


def test_profiles_keep_the_single_box_and_the_cluster_apart(services: dict[str, Any]) -> None:
    # Both take HOTLINE_SIP_HOST:5060 (Asterisk there, or Kamailio): one profile at a time.
    for name in TELEPHONY:
        assert services[name].get("profiles") == ["single"], name
    for name in (*CLUSTER, "cluster-secrets"):
        assert services[name].get("profiles") == ["cluster"], name
    for name in ("postgres", "redis", "migrate"):
        assert "profiles" not in services[name], f"{name} belongs to both"
    # `docker compose up` after `cp docker/env.example .env` is still the single box.
    example = (DOCKER / "env.example").read_text()
    assert re.search(r"^COMPOSE_PROFILES=single$", example, flags=re.MULTILINE)


def test_every_cluster_process_restarts_has_a_health_check_and_publishes_nothing(
    services: dict[str, Any],
) -> None:
    for name in CLUSTER:
        service = services[name]
        assert service.get("restart") == "unless-stopped", name
        assert service.get("network_mode") == "host", name
        assert published(service) == [], name
        assert service.get("healthcheck", {}).get("test"), name
    assert services["cluster-secrets"]["restart"] == "no", "a one-shot job is not restarted"
    for i in range(1, len(NODES) + 1):
        assert services[f"agi-{i}"]["healthcheck"]["test"][-1] == "fastagi"
        assert services[f"router-{i}"]["healthcheck"]["test"][-1] == "ami_link"


def test_each_node_is_laid_out_as_hotline_cluster_lays_it_out(services: dict[str, Any]) -> None:
    specs = {spec.name: spec for spec in cluster_plan(services)}
    for name, node in CLUSTER_NODE_SERVICES.items():
        spec, values = specs[node], env(services[name])
        assert values["HOTLINE_NODE"] == node, name
        assert values["HOTLINE_STATE_DIR"] == str(spec.state_dir), name
        assert values["HOTLINE_REDIS_PREFIX"] == spec.overrides["redis_prefix"], name
        # The default addresses are the loopback ones `hotline cluster` gives node i.
        for key in ("sip_host", "ami_host", "agi_host", "audiosocket_host"):
            assert values[f"HOTLINE_{key.upper()}"] == spec.address, (name, key)
        assert values["HOTLINE_RTP_START"] == spec.overrides["rtp_start"], name
        assert values["HOTLINE_RTP_END"] == spec.overrides["rtp_end"], name
        # Residents' calls come from the edge: its address counts as the carrier's.
        # (The same address twice when the edge is where the carrier is: harmless.)
        carriers = set(values["HOTLINE_PSTN_MATCH"].split(","))
        assert carriers == set(spec.overrides["pstn_match"].split(",")), name
        # A node's FastAGI server and router get exactly its Asterisk's settings.
        asterisk = f"asterisk-{name.rsplit('-', 1)[1]}"
        assert services[name]["environment"] == services[asterisk]["environment"], name
    ranges = [
        (int(env(services[f"asterisk-{i}"])["HOTLINE_RTP_START"]),
         int(env(services[f"asterisk-{i}"])["HOTLINE_RTP_END"]))
        for i in range(1, len(NODES) + 1)
    ]  # fmt: skip
    assert ranges[0][1] < ranges[1][0], "the nodes' RTP ranges must not overlap"


def test_the_cluster_shares_one_state_volume_one_secret_set_and_the_flows(
    compose: dict[str, Any], services: dict[str, Any], tmp_path: Path
) -> None:
    cluster_state = env(services["migrate"])["HOTLINE_STATE_DIR"]
    for name in (*CLUSTER, "cluster-secrets"):
        assert mounts(services[name]).get("state") == cluster_state, name
    for name in (*CLUSTER_NODE_SERVICES, "cluster-dashboard"):
        recordings = env(services[name])["HOTLINE_RECORDINGS_DIR"]
        assert mounts(services[name]).get("recordings") == recordings, name
        if not name.startswith("router"):
            flows = env(services[name])["HOTLINE_FLOWS_DIR"]
            assert f"./ivr_flows:{flows}:ro" in [str(v) for v in services[name]["volumes"]], name
    # Every node's secrets.json is a copy of the cluster's (one AMI secret set, one edge
    # secret), made before any node, Kamailio or the dashboard starts.
    assert services["cluster-secrets"]["entrypoint"] == ["python", "-c"]
    script = services["cluster-secrets"]["command"][0]
    state = tmp_path / "state"
    for _ in range(2):  # a restart of the stack keeps the secrets
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "HOTLINE_STATE_DIR": str(state)},
            check=True,
            timeout=60,
        )
        cluster_secrets = json.loads((state / "secrets.json").read_text())
        assert {"ami_secret", "edge_secret"} <= set(cluster_secrets)
        for name in ("asterisk-1", "asterisk-2"):
            node_state = Path(env(services[name])["HOTLINE_STATE_DIR"])
            copy = state / node_state.relative_to(cluster_state) / "secrets.json"
            assert json.loads(copy.read_text()) == cluster_secrets, name
            assert copy.stat().st_mode & 0o077 == 0, name
    for name in ("kamailio", "asterisk-1", "asterisk-2", "cluster-dashboard"):
        condition = services[name]["depends_on"]["cluster-secrets"]["condition"]
        assert condition == "service_completed_successfully", name
    for name in ("asterisk-1", "asterisk-2", "cluster-dashboard"):
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name
    for i in range(1, len(NODES) + 1):
        check = services[f"asterisk-{i}"]["healthcheck"]["test"]
        node_state = env(services[f"asterisk-{i}"])["HOTLINE_STATE_DIR"]
        assert f"{node_state}/asterisk/etc/asterisk.conf" in check
        for kind in ("agi", "router"):
            wanted = services[f"{kind}-{i}"]["depends_on"][f"asterisk-{i}"]["condition"]
            assert wanted == "service_healthy", (kind, i)
    assert {"state", "recordings"} <= set(compose["volumes"])


def test_kamailio_dispatches_to_the_nodes_and_the_dashboard_falls_back(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from hotline.cluster.control import dashboard_environment

    specs = cluster_plan(services)
    kamailio_env = env(services["kamailio"])
    addresses = [env(services[f"asterisk-{i}"])["HOTLINE_SIP_HOST"] for i in (1, 2)]
    assert kamailio_env["HOTLINE_CLUSTER_NODES"].split(",") == addresses
    # Kamailio takes the single box's SIP address: carriers and phones change nothing.
    assert kamailio_env["HOTLINE_SIP_HOST"] == env(services["migrate"])["HOTLINE_SIP_HOST"]
    assert kamailio_env["HOTLINE_STATE_DIR"] == env(services["migrate"])["HOTLINE_STATE_DIR"]
    dockerfile = (DOCKER / "kamailio.Dockerfile").read_text()
    assert re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.MULTILINE) == ["debian:sid-slim"]
    assert re.search(r"apt-get install[^&]*\bkamailio\b", dockerfile)
    entry = DOCKER / "kamailio-entrypoint.sh"
    assert entry.name in dockerfile and os.access(entry, os.X_OK)
    script = entry.read_text()
    assert "kamailio.write_config(settings, nodes)" in script
    assert 'exec kamailio -DD -E -Y "$(dirname "$conf")" -f "$conf"' in script
    ignore = (DOCKER / "kamailio.Dockerfile.dockerignore").read_text().splitlines()
    assert ".env" in ignore and ".git" in ignore
    # As `hotline cluster up` starts the dashboard: node 1's AMI, node 2's when it is down.
    dashboard = env(services["cluster-dashboard"])
    wanted = dashboard_environment(specs)
    assert dashboard["HOTLINE_AMI_HOST"] == wanted["HOTLINE_AMI_HOST"]
    assert dashboard["HOTLINE_AMI_FALLBACK_HOSTS"] == wanted["HOTLINE_AMI_FALLBACK_HOSTS"]
    # ... and the setting parses from the environment the way Compose hands it over.
    monkeypatch.setenv("HOTLINE_AMI_FALLBACK_HOSTS", dashboard["HOTLINE_AMI_FALLBACK_HOSTS"])
    assert Settings().ami_fallback_hosts == [specs[1].address]
    # Every node by name: the dashboard merges their live state under the prefixes the
    # nodes write, and names the node whose AMI took a click-to-call.
    assert dashboard["HOTLINE_NODE_AMI_HOSTS"] == wanted["HOTLINE_NODE_AMI_HOSTS"]
    monkeypatch.setenv("HOTLINE_NODE_AMI_HOSTS", dashboard["HOTLINE_NODE_AMI_HOSTS"])
    monkeypatch.setenv("HOTLINE_REDIS_PREFIX", env(services["migrate"])["HOTLINE_REDIS_PREFIX"])
    settings = Settings()
    node_prefixes = {
        env(services[f"asterisk-{i}"])["HOTLINE_NODE"]: env(services[f"asterisk-{i}"])[
            "HOTLINE_REDIS_PREFIX"
        ]
        for i in (1, 2)
    }
    assert settings.live_prefixes() == node_prefixes
    assert settings.node_of_ami_host(specs[1].address) == "node2"
