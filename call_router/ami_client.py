"""AMI clients: one long-lived link per process (`AmiLink`), a one-shot client for the CLI
(`AmiClient`: one process per act), and the `AmiSender` seam.

Every long-lived process holds one `AmiLink` for its actions, shared by all its features: the
dashboard's for call control, the agents panel and click-to-call (AMI user
`hotline-supervise`); the router's for virtual hold (QueueStatus and the call-backs'
Originates), the "is it fixed?" calls and the daily LoggerRotate (`hotline-originate`). Every
login tries ami_host, then each of ami_fallback_hosts (`connect_one_shot`). The router's event
stream is its listener's own connection (`ami_listener.py`), which also carries its
queue-member sync (`ManagerSender`). A link logs in once, logs in again after a loss
(Asterisk restarted), and bounds its actions: at most `max_in_flight` on the wire, at most
`max_waiting` queued for a slot, each reply within `action_timeout` (matched by ActionID) - a
dead or hung Asterisk gives AmiUnavailable, never a hang. Every reply is a plain dict of strings.

panoramisk guesses whether an action answers with a list of events from the reply text, and
guesses wrong for QueueAdd ("Added interface to queue" looks like a list to it, so the future
never resolves). `as_list` is therefore always passed explicitly.
"""

from __future__ import annotations

import asyncio
from asyncio import FIRST_COMPLETED
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Protocol

from panoramisk import Manager

from call_router.ami_protocol import StrictAmiProtocol
from call_router.settings import AmiRole, Settings

ACTION_TIMEOUT = 5.0
CONNECT_TIMEOUT = 5.0
# A link's pool: actions on the wire at once, and actions queued for a slot beyond those.
MAX_IN_FLIGHT = 8
MAX_WAITING = 64

Reply = dict[str, str]


class AmiUnavailable(Exception):
    """Asterisk's manager interface cannot be reached or refused the login."""


class AmiBusy(AmiUnavailable):
    """A link's pool is full: too many actions waiting, or no slot within the action timeout."""


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


async def done_or_lost(
    future: asyncio.Future[Any], lost: asyncio.Event | None, timeout: float
) -> bool:
    """Wait until the future is done, the connection is lost or `timeout` passes; True when
    the connection was lost first (the caller decides what each outcome means)."""
    watch = asyncio.ensure_future(lost.wait()) if lost is not None else None
    try:
        waiting: set[asyncio.Future[Any]] = {future} if watch is None else {future, watch}
        done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=FIRST_COMPLETED)
    finally:
        if watch is not None:
            watch.cancel()
    return watch is not None and watch in done and future not in done


async def exchange(
    manager: Manager, fields: Mapping[str, Any], many: bool, timeout: float = ACTION_TIMEOUT
) -> list[Reply]:
    """Send one action and wait for its reply (panoramisk matches it by ActionID). Raises
    AmiUnavailable when none comes in `timeout` or the connection is lost meanwhile."""
    action = fields.get("Action")
    reply_future = manager.send_action(dict(fields), as_list=many)
    lost = getattr(manager, "lost", None)
    lost_first = await done_or_lost(
        reply_future, lost if isinstance(lost, asyncio.Event) else None, timeout
    )
    if not reply_future.done():
        reply_future.cancel()
        if lost_first:
            raise AmiUnavailable(f"the AMI connection was lost before the reply to {action}")
        raise AmiUnavailable(f"no reply to {action} in {timeout}s")
    reply = reply_future.result()
    messages = reply if isinstance(reply, list) else [reply]
    return [plain(m) for m in messages]


async def wait_logged_in(manager: Manager, timeout: float = CONNECT_TIMEOUT) -> None:
    """Wait until a freshly connected panoramisk Manager is logged in.

    panoramisk starts the login from a done-callback of connect(), so there is nothing to
    await until that callback has run; a refused login closes the manager. A connection
    dropped before the login's reply (a node going down, a proxy with nothing behind it) is a
    ConnectionResetError at once, not a wait for the timeout: the next host is tried now.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    lost = manager.lost if isinstance(manager, NoReconnectManager) else None
    while manager.authenticated_future is None and not manager.authenticated:
        if lost is not None and lost.is_set():
            raise ConnectionResetError("AMI connection closed before login")
        if loop.time() > deadline:
            raise TimeoutError("AMI login did not start")
        await asyncio.sleep(0.01)
    login = manager.authenticated_future
    if login is not None:
        await done_or_lost(login, lost, timeout)
        if not login.done():
            login.cancel()
            if lost is not None and lost.is_set():
                raise ConnectionResetError("AMI connection closed before login")
            raise TimeoutError("no reply to the AMI login")
        response = login.result()
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
            # Read strictly: no message a caller's number split off (call_router/ami_protocol.py).
            protocol_factory=StrictAmiProtocol,
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
        return await exchange(self._manager, fields, many)


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
        return await exchange(self._manager, fields, many)


class AmiLink:
    """One long-lived, logged-in AMI connection for a whole process (an `AmiSender`).

    Connects on first use and again after the connection is lost or an action times out
    (a hung link is dropped, the next action logs in afresh). panoramisk matches replies to
    actions by ActionID, so concurrent requests share the connection, at most `max_in_flight`
    at a time; up to `max_waiting` more wait for a slot within their action timeout, the rest
    are refused at once (AmiBusy). `originate` sends an Async Originate and waits for its
    OriginateResponse (the AMI user's event filter lets only that event through); its slot is
    free again once Asterisk has queued it.
    """

    def __init__(
        self,
        settings: Settings,
        role: AmiRole = "supervise",
        *,
        action_timeout: float = ACTION_TIMEOUT,
        max_in_flight: int = MAX_IN_FLIGHT,
        max_waiting: int = MAX_WAITING,
    ) -> None:
        self._settings = settings
        self._role: AmiRole = role
        self.action_timeout = action_timeout
        self.max_in_flight = max_in_flight
        self.max_waiting = max_waiting
        self._manager: NoReconnectManager | None = None
        self._lock: asyncio.Lock | None = None
        self._slots: asyncio.Semaphore | None = None
        self._waiting = 0
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

    async def connect(self) -> str:
        """Log in now if not logged in; the AMI address that answered (a cluster's node)."""
        return (await self._ready()).host

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

    @asynccontextmanager
    async def _slot(self, action: object) -> AsyncIterator[None]:
        """One of the pool's places for an action on the wire."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_in_flight)
        if self._slots.locked():
            if self._waiting >= self.max_waiting:
                raise AmiBusy(f"AMI busy: {self._waiting} actions already wait, {action} refused")
            self._waiting += 1
            try:
                await asyncio.wait_for(self._slots.acquire(), self.action_timeout)
            except TimeoutError as exc:
                raise AmiBusy(
                    f"AMI busy: no free slot for {action} in {self.action_timeout}s"
                ) from exc
            finally:
                self._waiting -= 1
        else:
            await self._slots.acquire()
        try:
            yield
        finally:
            self._slots.release()

    async def _exchange(self, fields: Mapping[str, Any], many: bool) -> list[Reply]:
        async with self._slot(fields.get("Action")):
            manager = await self._ready()
            try:
                return await exchange(manager, fields, many, self.action_timeout)
            except AmiUnavailable:
                self._drop(manager)
                raise

    async def send(self, fields: Mapping[str, str], *, many: bool = False) -> list[Reply]:
        return await self._exchange(fields, many)

    def _on_originate_response(self, _manager: Manager, event: Any) -> None:
        fields = plain(event)
        waiter = self._responses.get(fields.get("ActionID", ""))
        if waiter is not None and not waiter.done():
            waiter.set_result(fields)

    async def originate(self, fields: Mapping[str, str | list[str]], timeout: float) -> Reply:
        """An Async Originate (fields must hold a unique ActionID): its OriginateResponse, or
        the immediate error reply. Raises AmiUnavailable when none comes in `timeout` or the
        connection is lost before it."""
        action_id = str(fields["ActionID"])
        waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._responses[action_id] = waiter
        try:
            first = (await self._exchange({**fields, "Async": "true"}, False))[0]
            if first.get("Response", "").lower() != "success":
                return first
            manager = self._manager
            lost_first = await done_or_lost(
                waiter, manager.lost if manager is not None else None, timeout
            )
            if waiter.done():
                return waiter.result()
            if lost_first:
                raise AmiUnavailable("the AMI connection was lost before the OriginateResponse")
            raise AmiUnavailable(f"no OriginateResponse in {timeout}s")
        finally:
            self._responses.pop(action_id, None)

    async def close(self) -> None:
        if self._manager is not None:
            self._manager.close()
            self._manager = None
