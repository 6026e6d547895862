"""The one settings object: `HOTLINE_*` environment variables, an optional TOML file.

Every process (CLI, FastAGI server, AMI listener, dashboard) reads the same
settings, so a test or a second deployment only has to change the environment.
The fields are grouped by what they configure in settings_platform.py and settings_service.py;
here they are composed, read, and turned into derived paths and logins.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from call_router.installation import installation_id, load_or_create_secrets

# Re-exported: the modules that need the project root ask the settings for it.
from call_router.settings_platform import PROJECT_ROOT as PROJECT_ROOT
from call_router.settings_platform import (
    AgiSettings,
    AmiSettings,
    DashboardSettings,
    StorageSettings,
    TelephonySettings,
)
from call_router.settings_service import ServiceSettings

QUEUES = ("plumbing", "electricity", "heating", "lift", "meters", "coordinator", "duty")


# AMI users: the router's event listener, click-to-call's Originate, one-shot queue actions,
# and the supervisors' call control (the dashboard's one long-lived link, the CLI's calls).
AmiRole = Literal["router", "originate", "control", "supervise"]
AMI_ROLES: tuple[AmiRole, ...] = ("router", "originate", "control", "supervise")


DEFAULT_CONFIG_FILE = "hotline.toml"


class SettingsFileMissing(ValueError):
    """HOTLINE_CONFIG_FILE names a file that is not there: a typo must not quietly run the
    hotline on defaults (another database, another number)."""


def _config_file() -> Path | None:
    """The TOML file to read: HOTLINE_CONFIG_FILE (empty: none), else ./hotline.toml if any."""
    named = os.environ.get("HOTLINE_CONFIG_FILE")
    if named is None:
        default = Path(DEFAULT_CONFIG_FILE)
        return default if default.is_file() else None
    if not named:
        return None
    path = Path(named)
    if not path.is_file():
        raise SettingsFileMissing(
            f"HOTLINE_CONFIG_FILE names {named}, which is not a file "
            "(set it empty to read no settings file)"
        )
    return path


# Pydantic orders the fields from the last base to the first: the groups are listed last-first
# so the fields keep their order (storage ... service).
class Settings(
    ServiceSettings,
    DashboardSettings,
    AgiSettings,
    AmiSettings,
    TelephonySettings,
    StorageSettings,
    BaseSettings,
):
    model_config = SettingsConfigDict(env_prefix="HOTLINE_", extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    # --- derived paths -------------------------------------------------------------

    @model_validator(mode="after")
    def _installation_redis_prefix(self) -> Settings:
        if not self.redis_prefix:
            self.redis_prefix = f"hotline-{installation_id(self.state_dir)}"
        return self

    # --- cluster nodes ---------------------------------------------------------------

    def node_redis_prefix(self, node: str) -> str:
        """Where node `node`'s router keeps its live state: its own prefix, so one router's
        rebuild never wipes another's calls (the cluster's nodes get it from here)."""
        return f"{self.redis_prefix}-{node}"

    def live_prefixes(self) -> dict[str | None, str]:
        """Whose live state the dashboard reads: node name -> Redis prefix; one box: {None:
        its own prefix}."""
        if not self.node_ami_hosts:
            return {None: self.redis_prefix}
        return {node: self.node_redis_prefix(node) for node in self.node_ami_hosts}

    def node_of_ami_host(self, host: str) -> str | None:
        """The node whose AMI listens at `host`: from node_ami_hosts, else this box's own
        node for its own AMI (a node's router), else None (one box)."""
        for node, address in self.node_ami_hosts.items():
            if address == host:
                return node
        return self.node if host == self.ami_host else None

    @property
    def sandbox_root(self) -> Path:
        return self.asterisk_root or self.cache_dir / "asterisk-root"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'hotline.db'}"

    @property
    def agi_writer_in_process(self) -> bool:
        """Whether the FastAGI call-log writer runs in a child process (`agi_writer_process`)."""
        if self.agi_writer_process == "auto":
            return self.db_url.startswith("sqlite")
        return self.agi_writer_process

    @property
    def agi_service(self) -> str:
        """This FastAGI server's service name (pid, ready and log files): agi, agi2, ..."""
        return "agi" if self.agi_server == 1 else f"agi{self.agi_server}"

    @property
    def agi_addresses(self) -> list[str]:
        """The FastAGI servers the dialplan tries, in order ("host:port")."""
        return list(self.agi_pool) or [f"{self.agi_host}:{self.agi_port}"]

    @property
    def agi_spool_file(self) -> Path:
        """The FastAGI call-log writer's spool (writes kept while the database is away)."""
        return self.state_dir / "spool" / f"{self.agi_service}-call-log.jsonl"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def agi_workers_file(self) -> Path:
        """Who serves under `hotline agi --workers N`, written by their parent (absent: one
        process)."""
        return self.run_dir / f"{self.agi_service}-workers.json"

    @property
    def router_spool_path(self) -> Path:
        """Events the router holds for an unreachable database (call_router/event_backlog.py)."""
        return self.state_dir / "spool" / "router-events.jsonl"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "log"

    @property
    def asterisk_dir(self) -> Path:
        """Rendered Asterisk config plus its spool/log/run folders."""
        return self.state_dir / "asterisk"

    @property
    def attachments_dir(self) -> Path:
        """Photos and documents of service requests (never in the database)."""
        return self.state_dir / "attachments"

    @property
    def agi_url(self) -> str:
        return f"agi://{self.agi_host}:{self.agi_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{self.dashboard_host}:{self.dashboard_port}"

    @cached_property
    def secrets(self) -> dict[str, str]:
        """Generated once per state dir and never committed: no default credentials."""
        return load_or_create_secrets(self.state_dir / "secrets.json")

    @property
    def ami_secret(self) -> str:
        return self.secrets["ami_secret"]

    @property
    def dashboard_device_key(self) -> str:
        return self.secrets["dashboard_device_key"]

    def ami_login(self, role: AmiRole) -> tuple[str, str]:
        """(user, secret) of one AMI user: each role gets only the classes it uses
        (asterisk_conf/manager.conf.j2), so a leaked or confused client cannot do the rest."""
        if role == "router":
            return self.ami_username, self.ami_secret
        return f"{self.ami_username}-{role}", self.secrets[f"ami_{role}_secret"]


def get_settings() -> Settings:
    return Settings()
