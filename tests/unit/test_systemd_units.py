"""deploy/systemd/ runs the same processes as docker-compose.yml, each restarted when it dies.

systemd itself does not run here: the unit files are read as INI, as systemd would.
"""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
LONG_RUNNING = ("asterisk", "agi", "router", "dashboard")


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text())
    return parser


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_every_long_running_process_restarts_and_gives_up_loudly(name: str) -> None:
    service = unit(f"hotline-{name}.service")
    assert service["Service"]["Restart"] == "always"
    assert float(service["Service"]["RestartSec"]) <= 2, "serving again within seconds"
    # A crash loop ends in "failed" instead of spinning for ever.
    assert int(service["Unit"]["StartLimitBurst"]) > 0
    assert int(service["Unit"]["StartLimitIntervalSec"]) > 0
    assert service["Unit"]["PartOf"] == "hotline.target"
    assert "hotline-migrate.service" in service["Unit"]["After"].split()
    assert service["Service"]["User"] == "hotline"


def test_the_units_run_what_the_compose_services_run() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("agi", "router", "dashboard", "migrate"):
        service = unit(f"hotline-{name}.service")["Service"]
        command = shlex.split(service["ExecStart"])
        assert Path(command[0]).name == "hotline", name
        assert command[1:] == compose[name]["command"], name
    asterisk = shlex.split(unit("hotline-asterisk.service")["Service"]["ExecStart"])
    assert Path(asterisk[0]).name == "asterisk-entrypoint.sh"
    assert (ROOT / "docker" / "asterisk-entrypoint.sh").exists()


def test_the_target_starts_them_all() -> None:
    wants = unit("hotline.target")["Unit"]["Wants"].split()
    assert sorted(wants) == sorted(f"hotline-{name}.service" for name in (*LONG_RUNNING, "migrate"))
    assert unit("hotline-migrate.service")["Service"]["Type"] == "oneshot"
