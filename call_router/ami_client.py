"""AMI clients: one-shot (the CLI), one long-lived link per process (the dashboard's call
control and agent panel), and the `AmiSender` seam.

The agent and call-control services talk to Asterisk through `AmiSender`: the CLI opens a
short connection per command with `AmiClient`; the dashboard keeps one `AmiLink` per process
(logged in once, reconnected after a loss: no fresh login per button press); the router
passes its long-lived manager through `ManagerSender`. Every reply is a plain dict of
strings, and every call has a timeout: a hung Asterisk must never hang an operator's "pause"
button.

panoramisk guesses whether an action answers with a list of events from the reply text, and
guesses wrong for QueueAdd ("Added interface to queue" looks like a list to it, so the future
never resolves). `as_list` is therefore always passed explicitly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Protocol

from panoramisk import Manager

from call_router.settings import AmiRole, Settings

ACTION_TIMEOUT = 5.0
CONNECT_TIMEOUT = 5.0

Reply = dict[str, str]


class AmiUnavailable(Exception):
    """Asterisk's manager interface cannot be reached or refused the login."""


class AmiActionFailed(Exception):
    """Asterisk answered an action with Response: Error."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"{action}: {message}")
        self.action = action
        self.message = message


class AmiSender(Protocol):
    async def send(self, fields: Mapping[str, str], *, many: bool = False) -> list[Reply]:
        """Send one action; the reply, plus the events of an event-list reply when `many`."""
        ...


def plain(message: Mapping[str, Any]) -> Reply:
    out: Reply = {}
    for key, value in message.items():
        out[str(key)] = str(value[-1] if isinstance(value, list) and value else value)
    return out


def check(action: str, replies: list[Reply]) -> list[Reply]:
    """Raise AmiActionFailed on an Error response; return the replies otherwise."""
    first = replies[0] if replies else {}
    if first.get("Response", "").lower() in ("error", "fail", "failure"):
        raise AmiActionFailed(action, first.get("Message", "error"))
    return replies


async def _send(manager: Manager, fields: Mapping[str, str], many: bool) -> list[Reply]:
    try:
        reply = await asyncio.wait_for(
            manager.send_action(dict(fields), as_list=many), ACTION_TIMEOUT
        )
    except TimeoutError as exc:
        raise AmiUnavailable(f"no reply to {fields.get('Action')} in {ACTION_TIMEOUT}s") from exc
    messages = reply if isinstance(reply, list) else [reply]
    return [plain(m) for m in messages]


async def wait_logged_in(manager: Manager, timeout: float = CONNECT_TIMEOUT) -> None:
    """Wait until a freshly connected panoramisk Manager is logged in.

    panoramisk starts the login from a done-callback of connect(), so there is nothing to
    await until that callback has run; a refused login closes the manager.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while manager.authenticated_future is None and not manager.authenticated:
        if isinstance(manager, NoReconnectManager) and manager.lost.is_set():
            raise AmiUnavailable("AMI connection closed before login")
        if loop.time() > deadline:
            raise TimeoutError("AMI login did not start")
        await asyncio.sleep(0.01)
    if manager.authenticated_future is not None:
        response = await asyncio.wait_for(manager.authenticated_future, timeout)
        if not getattr(response, "success", False):
            manager.close()
            user = manager.config.get("username")
            raise AmiUnavailable(f"AMI login refused for user {user!r}")


class NoReconnectManager(Manager):  # type: ignore[misc]
    """A panoramisk Manager that never reconnects by itself: a failed or closed connection
    stays closed and sets `lost`.

    One-shot clients want nothing more; the router's listener owns reconnecting (with backoff
    and a reconcile each time), which panoramisk's built-in retry would do behind its back.
    """

    pinger: asyncio.Handle | None  # set by panoramisk's Manager (untyped)

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.lost = asyncio.Event()

    @classmethod
    def to(
        cls,
        settings: Settings,
        role: AmiRole = "router",
        host: str | None = None,
        **options: Any,
    ) -> NoReconnectManager:
        """A manager for the hotline's Asterisk (or the node at `host`), logged in as the AMI
        user of `role`."""
        username, secret = settings.ami_login(role)
        return cls(
            host=host or settings.ami_host,
            port=settings.ami_port,
            username=username,
            secret=secret,
            **options,
        )

    @property
    def host(self) -> str:
        """The AMI address this manager talks to (connect_one_shot: the node that answered)."""
        return str(self.config["host"])

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        if f.cancelled() or f.exception() is not None:
            self.lost.set()
            return
        super().connection_made(f)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connected = False
        if self.pinger:
            self.pinger.cancel()
            self.pinger = None
        self.lost.set()


class ManagerSender:
    """AmiSender over an already connected and logged-in panoramisk Manager (the router's)."""

    def __init__(self, manager: Manager) -> None:
        self._manager = manager

    async def send(self, fields: Mapping[str, str], *, many: bool = False) -> list[Reply]:
        return await _send(self._manager, fields, many)


async def connect_one_shot(
    settings: Settings, *, events: str, role: AmiRole = "control"
) -> NoReconnectManager:
    """A connected, logged-in manager for a short task; the caller closes it.

    ami_host first, then each of ami_fallback_hosts (cluster nodes) that is reachable; the
    manager's `host` says which one answered (Settings.node_of_ami_host: its node)."""
    failures = []
    for host in (settings.ami_host, *settings.ami_fallback_hosts):
        # No keep-alive: the connection lives for one action or one call set-up.
        manager = NoReconnectManager.to(settings, role, host, ping_delay=3600, events=events)
        try:
            await asyncio.wait_for(manager.connect(), CONNECT_TIMEOUT)
            await wait_logged_in(manager)
        except (OSError, TimeoutError) as exc:
            manager.close()
            failures.append(f"{host}:{settings.ami_port}: {exc or type(exc).__name__}")
            continue
        return manager
    raise AmiUnavailable(f"cannot reach Asterisk's AMI at {'; '.join(failures)}")


class AmiClient:
    """`async with AmiClient(settings) as ami: await ami.send({...})` - one short connection."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._manager: Manager | None = None

    async def __aenter__(self) -> AmiClient:
        # A one-shot client sees no events it would use; its AMI user may only send queue
        # actions (QueueStatus, QueueAdd/Remove/Pause/Penalty).
        self._manager = await connect_one_shot(self._settings, events="off", role="control")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._manager is not None:
            self._manager.close()
            self._manager = None

    async def send(self, fields: Mapping[str, str], *, many: bool = False) -> list[Reply]:
        if self._manager is None:
            raise AmiUnavailable("AmiClient used outside `async with`")
        return await _send(self._manager, fields, many)


class AmiLink:
    """One long-lived, logged-in AMI connection for a whole process (an `AmiSender`).

    Connects on first use and again after the connection is lost or an action times out
    (a hung link is dropped, the next action logs in afresh). panoramisk matches replies to
    actions by ActionID, so concurrent requests share the connection. `originate` sends an
    Async Originate and waits for its OriginateResponse (the AMI user's event filter lets
    only that event through).
    """

    def __init__(self, settings: Settings, role: AmiRole = "supervise") -> None:
        self._settings = settings
        self._role: AmiRole = role
        self._manager: NoReconnectManager | None = None
        self._lock: asyncio.Lock | None = None
        self._responses: dict[str, asyncio.Future[Reply]] = {}
        # Event name -> callbacks with its plain fields, registered again on every connect.
        self._listeners: dict[str, list[Callable[[Reply], None]]] = {}
        self.logins = 0  # how many times it logged in (tests: one per process, not per action)

    def listen(self, event: str, callback: Callable[[Reply], None]) -> None:
        """Call `callback` with each `event` the link receives (the AMI user's filter decides
        which come at all). Keep it tiny: it runs on the link's reader."""
        self._listeners.setdefault(event, []).append(callback)

    def _on_event(self, _manager: Manager, event: Any) -> None:
        fields = plain(event)
        for callback in self._listeners.get(fields.get("Event", ""), ()):
            callback(fields)

    @property
    def connected(self) -> bool:
        return self._manager is not None and not self._manager.lost.is_set()

    async def _ready(self) -> NoReconnectManager:
        manager = self._manager
        if manager is not None and not manager.lost.is_set():
            return manager
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            manager = self._manager
            if manager is not None and not manager.lost.is_set():
                return manager
            if manager is not None:
                manager.close()
            manager = await connect_one_shot(
                self._settings, events="call,dtmf" if self._listeners else "call", role=self._role
            )
            manager.register_event("OriginateResponse", self._on_originate_response)
            for name in self._listeners:
                manager.register_event(name, self._on_event)
            self._manager = manager
            self.logins += 1
            return manager

    def _drop(self, manager: NoReconnectManager) -> None:
        if self._manager is manager:
            self._manager = None
        manager.close()

    async def send(self, fields: Mapping[str, str], *, many: bool = False) -> list[Reply]:
        manager = await self._ready()
        try:
            return await _send(manager, fields, many)
        except AmiUnavailable:
            self._drop(manager)
            raise

    def _on_originate_response(self, _manager: Manager, event: Any) -> None:
        fields = plain(event)
        waiter = self._responses.get(fields.get("ActionID", ""))
        if waiter is not None and not waiter.done():
            waiter.set_result(fields)

    async def originate(self, fields: Mapping[str, str | list[str]], timeout: float) -> Reply:
        """An Async Originate (fields must hold a unique ActionID): its OriginateResponse, or
        the immediate error reply. Raises AmiUnavailable when none comes in `timeout`."""
        manager = await self._ready()
        action_id = str(fields["ActionID"])
        waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._responses[action_id] = waiter
        try:
            try:
                first = plain(
                    await asyncio.wait_for(
                        manager.send_action({**fields, "Async": "true"}, as_list=False),
                        ACTION_TIMEOUT,
                    )
                )
            except TimeoutError as exc:
                self._drop(manager)
                raise AmiUnavailable(f"no reply to Originate in {ACTION_TIMEOUT}s") from exc
            if first.get("Response", "").lower() != "success":
                return first
            try:
                return await asyncio.wait_for(waiter, timeout)
            except TimeoutError as exc:
                raise AmiUnavailable(f"no OriginateResponse in {timeout}s") from exc
        finally:
            self._responses.pop(action_id, None)

    async def close(self) -> None:
        if self._manager is not None:
            self._manager.close()
            self._manager = None
