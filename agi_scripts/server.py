"""The FastAGI server: accepts Asterisk's AGI connections and runs one route per call.

panoramisk's Application is only the route registry; connections are served here so the
environment is read with a timeout and every failure leaves the call to the dialplan's
fail-safe (the coordinator queue) instead of hanging or dropping it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from panoramisk.fast_agi import Application

from agi_scripts.address_speech import AddressListener
from agi_scripts.agi import (
    ENV_MAX_BYTES,
    ENV_TIMEOUT,
    AgiChannel,
    AgiEnvironment,
    AgiError,
    CallerHangup,
    EnvironmentReadError,
    printable,
    read_environment,
)
from agi_scripts.audiosocket import AudioSocketServer
from agi_scripts.call_context import CallContext
from agi_scripts.call_writer import CallWriter
from agi_scripts.event_loop import tune_garbage_collector
from agi_scripts.flows.services import FlowServices
from agi_scripts.handlers.hotline import hotline
from agi_scripts.handlers.meters import meters
from agi_scripts.handlers.request_feedback import request_feedback
from agi_scripts.listen import SpeechMenu, Utterance
from agi_scripts.speech import Recogniser, Understanding, configured_model_path
from agi_scripts.workers import LISTEN_BACKLOG, Listeners
from agi_scripts.writer_common import Writer
from agi_scripts.writer_process import WriterProcess, open_call_log, writer_ops
from call_router.call_log import CallLog
from call_router.routing import SUPPORTED_LANGUAGES
from call_router.settings import Settings

# Running calls get this long to finish their menu after SIGTERM before they are cancelled.
SHUTDOWN_GRACE = 5.0

Route = Callable[[AgiChannel, "CallContext"], Awaitable[None]]


class RouteRegistry(Application):
    """panoramisk's Application, with a public lookup and no event-loop lookup at build time."""

    def __init__(
        self, settings: Settings, call_log: CallLog, flows: FlowServices | None = None
    ) -> None:
        # Application.__init__ asks for the current event loop, which we neither need nor
        # want outside asyncio.run(); set up the same attributes without it.
        dict.__init__(self)
        self.default_encoding = "utf-8"
        self._route: dict[str, Route] = {}
        self.settings = settings
        self.call_log = call_log
        self.flows = flows

    def route(self, path: str) -> Route | None:
        return self._route.get(path)

    @property
    def paths(self) -> list[str]:
        return list(self._route)


def build_app(
    settings: Settings, call_log: CallLog, flows: FlowServices | None = None
) -> Application:
    if flows is None:
        flows = FlowServices.from_settings(settings, log=structlog.get_logger("hotline.flows"))
    app = RouteRegistry(settings, call_log, flows)
    # One explicit line per route: route name = handler module = function name.
    app.add_route("hotline", hotline)
    app.add_route("meters", meters)
    app.add_route("request_feedback", request_feedback)
    return app


class AgiServer:
    """The listening socket plus the set of calls in progress, for a graceful stop."""

    def __init__(
        self,
        app: RouteRegistry,
        *,
        env_timeout: float = ENV_TIMEOUT,
        command_timeout: float | None = None,
        audiosocket: AudioSocketServer | None = None,
        writer: Writer | None = None,
        max_sessions: int | None = None,
    ) -> None:
        self.app = app
        self.audiosocket = audiosocket
        settings = app.settings
        self.writer: Writer = writer or CallWriter(
            app.call_log,
            settings.agi_spool_file,
            memory_limit=settings.agi_writer_memory_limit,
            max_backlog=settings.agi_writer_max_backlog,
        )
        self.max_sessions = max_sessions or settings.agi_max_sessions
        self.overloaded = 0  # callers answered "overloaded" since start
        self._overload_logged = 0.0
        self.env_timeout = env_timeout
        self.command_timeout = command_timeout
        self.log = structlog.get_logger("hotline.agi")
        self._server: asyncio.Server | None = None
        self._calls: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    async def start(self, host: str, port: int, *, sock: socket.socket | None = None) -> None:
        """Listen on host:port, or accept on `sock` (the socket `hotline agi --workers`' parent
        bound and shares with its other workers)."""
        await self.writer.start()
        where: dict[str, Any] = {"sock": sock} if sock is not None else {"host": host, "port": port}
        self._server = await asyncio.start_server(
            self._on_connection, **where, backlog=LISTEN_BACKLOG, limit=ENV_MAX_BYTES * 2
        )
        self.log.info("agi_listening", host=host, port=self.port, routes=self.app.paths)

    async def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop accepting, give running calls `grace` seconds, then cancel the rest."""
        if self._server is not None:
            self._server.close()
        pending = set(self._calls)
        if pending:
            self.log.info("agi_draining", calls=len(pending), grace=grace)
            _, still_running = await asyncio.wait(pending, timeout=grace)
            for task in still_running:
                task.cancel()
            if still_running:
                await asyncio.wait(still_running, timeout=1.0)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        await self.writer.stop()
        self.log.info("agi_stopped")

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._calls.add(task)
        try:
            await self._serve_call(reader, writer)
        finally:
            self._calls.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                # A timeout scope, not wait_for: no task of its own per call.
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()

    async def _serve_call(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            env = await read_environment(reader, timeout=self.env_timeout)
        except EnvironmentReadError as exc:
            peer = writer.get_extra_info("peername")
            self.log.warning("agi_bad_environment", peer=str(peer), error=str(exc))
            return
        # One bind per call (each bind of the module's lazy logger builds a logger afresh).
        log = self.log.bind(
            peer=str(writer.get_extra_info("peername")),
            uniqueid=printable(env.uniqueid, 64),
            channel=printable(env.channel, 128),
            route=printable(env.network_script, 64),
        )
        if env.forged:
            # A line break smuggled into the caller's values; those values are not believed.
            log.warning("agi_environment_forged", keys=sorted(env.forged))
        channel = AgiChannel(reader, writer, env)
        if self.command_timeout is not None:
            channel.default_timeout = self.command_timeout
        try:
            await self._serve_channel(channel, env, log)
        finally:
            channel.close()

    async def _serve_channel(self, channel: AgiChannel, env: AgiEnvironment, log: Any) -> None:
        if self.active_calls > self.max_sessions or self.writer.behind:
            await self._overloaded(channel, log)
            return
        route = self.app.route(env.network_script)
        if route is None:
            log.warning("agi_unknown_route")
            # The dialplan sees no HOTLINE_QUEUE and sends the caller to the coordinator.
            with contextlib.suppress(AgiError, CallerHangup):
                await channel.verbose(
                    f"hotline: no FastAGI route {env.network_script!r}; dialplan fail-safe applies"
                )
            return
        ctx = CallContext(
            env=env,
            settings=self.app.settings,
            call_log=self.app.call_log,
            log=log,
            writer=self.writer,
            audiosocket=self.audiosocket,
            flows=self.app.flows,
        )
        try:
            await route(channel, ctx)
        except CallerHangup:
            log.info("agi_caller_hangup")
        except asyncio.CancelledError:
            log.warning("agi_call_cancelled")
            raise
        except Exception as exc:
            linkedid = ctx.linkedid or printable(env.uniqueid, 64)
            if isinstance(exc, AgiError) and channel.desynchronised:
                # Garbage, an over-long line or a reply that never came: nothing more can be
                # said on this stream; closing it leaves the caller to the dialplan.
                log.warning("agi_out_of_step", linkedid=linkedid, error=str(exc))
                return
            # Whatever went wrong, the dialplan routes the caller (coordinator): never drop.
            log.exception("agi_route_failed", linkedid=linkedid)
            with contextlib.suppress(AgiError, CallerHangup, ValueError):
                await channel.verbose("hotline: FastAGI route failed; dialplan fail-safe applies")

    async def _overloaded(self, channel: AgiChannel, log: Any) -> None:
        """Too busy to run a menu well: hand the caller straight back to the dialplan, whose
        fail-safe (no HOTLINE_QUEUE set) puts them through to the coordinator at once."""
        self.overloaded += 1
        now = time.monotonic()
        if now - self._overload_logged >= 1.0:  # one line a second, not one per caller
            self._overload_logged = now
            log.warning(
                "agi_overloaded",
                sessions=self.active_calls,
                max_sessions=self.max_sessions,
                writer_backlog=self.writer.backlog,
                overloaded_total=self.overloaded,
            )
        with contextlib.suppress(AgiError, CallerHangup):
            await channel.verbose("hotline: FastAGI overloaded; dialplan fail-safe applies")


async def serve(
    settings: Settings, *, ready: asyncio.Event | None = None, listeners: Listeners | None = None
) -> None:
    """Run the FastAGI server until SIGTERM/SIGINT or cancellation. Migrations are the CLI's job.

    `listeners`: this process is one of `hotline agi --workers N` (agi_scripts/workers.py): it
    accepts on the sockets its parent bound and keeps its own spool."""
    listeners = listeners or Listeners()
    db, call_log = open_call_log(settings)
    spool = listeners.spool or settings.agi_spool_file
    writer: Writer
    if settings.agi_writer_in_process:
        # The database work in a process of its own: no GIL shared with the callers' loop.
        writer = WriterProcess(
            spool, ops=writer_ops(), settings=settings, max_backlog=settings.agi_writer_max_backlog
        )
    else:
        writer = CallWriter(
            call_log,
            spool,
            memory_limit=settings.agi_writer_memory_limit,
            max_backlog=settings.agi_writer_max_backlog,
            ops=writer_ops(),
        )
    audiosocket = AudioSocketServer()
    recogniser = Recogniser(settings)
    speech = SpeechMenu(settings, recogniser, audiosocket, on_utterance=_speech_recorder(writer))
    flows = FlowServices.from_settings(
        settings,
        db=db,
        speech=speech,
        address_speech=AddressListener(speech),
        log=structlog.get_logger("hotline.flows"),
        defer=writer.keep_from_thread,
        worker=listeners.worker or 0,
    )
    app = build_app(settings, call_log, flows)
    assert isinstance(app, RouteRegistry)
    server = AgiServer(app, audiosocket=audiosocket, writer=writer)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread (e.g. under a test runner): cancellation still stops us
    # `hotline flows reload` sends SIGHUP: reload the flows, keeping the last good ones.
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGHUP, flows.registry.reload)
        installed.append(signal.SIGHUP)
    _warn_about_missing_prompts(settings, server.log)
    # Models take seconds to load: load them now, in a thread, so the first caller does not
    # wait and a missing model is reported at start-up (its calls get the keypad menu).
    # The writer (its process imports for a second or more) starts meanwhile.
    writer_started = asyncio.create_task(writer.start())
    loaded = await asyncio.to_thread(recogniser.preload, _speech_languages(settings))
    server.log.info("speech_models", **{lang: error or "loaded" for lang, error in loaded.items()})
    try:
        try:
            await audiosocket.start(
                settings.audiosocket_host,
                settings.audiosocket_port,
                advertise=settings.audiosocket_advertise_host,
            )
        except OSError as exc:
            # Calls still work: listen() falls back to RECORD FILE when the server is not up.
            server.log.warning("audiosocket_not_listening", error=str(exc))
        await writer_started
        _tune_for_latency()
        await server.start(settings.agi_host, settings.agi_port, sock=listeners.agi)
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await server.stop()
        await audiosocket.stop()
        recogniser.close()
        db.dispose()


# How long the call-log writer's thread may keep the GIL while the event loop waits for it
# (Python's default is 5 ms: every command answered while a burst is being written could
# wait that long).
GIL_SWITCH_INTERVAL = 0.001


def _tune_for_latency() -> None:
    """Before the first call: the garbage collector tuned for a process full of calls, and
    the writer thread hands the GIL back sooner."""
    tune_garbage_collector()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)


def _speech_languages(settings: Settings) -> list[str]:
    """The hotline's languages, plus any other with a model (ko: the packaged test model)."""
    extra = [lang for lang in ("ko",) if configured_model_path(settings, lang) is not None]
    return [*SUPPORTED_LANGUAGES, *extra]


def _speech_recorder(writer: Writer) -> Callable[[Utterance, Any], Awaitable[None]]:
    """SpeechMenu's on_utterance: the transcript, intent and audio file onto the call record."""
    log = structlog.get_logger("hotline.speech")

    async def record(utterance: Utterance, understood: Understanding | None) -> None:
        # Numbers only: the transcript is the caller's words, kept on the call, not in logs.
        log.info(
            "speech_heard",
            linkedid=utterance.linkedid,
            mode=utterance.mode,
            ended_by=str(utterance.ended_by),
            speech_ms=utterance.speech_ms,
            latency_ms=utterance.end_of_speech_to_result_ms,
            intent=understood.intent if understood is not None else None,
            confidence=understood.confidence if understood is not None else None,
        )
        if not utterance.linkedid or (understood is None and utterance.path is None):
            return  # nothing heard, nothing kept
        writer.submit(
            "record_speech",
            utterance.linkedid,
            transcript=understood.transcript if understood is not None else None,
            intent=understood.intent if understood is not None else None,
            confidence=understood.confidence if understood is not None else None,
            utterance_path=str(utterance.path) if utterance.path is not None else None,
        )

    return record


def _warn_about_missing_prompts(settings: Settings, log: Any) -> None:
    # With a prompt missing, Asterisk 22 answers -1 to STREAM FILE (and the AGI ends with
    # AGISTATUS=FAILURE) or GET DATA: every caller would skip the menu for the coordinator.
    from call_router.flows.prompts import PromptError, missing_prompts

    try:
        missing = missing_prompts(settings)
    except PromptError as exc:
        log.warning("agi_prompts_unreadable", error=str(exc))
        return
    if missing:
        log.warning("agi_prompts_missing", prompts=missing, hint="run `hotline prompts build`")


def main() -> None:
    from agi_scripts.event_loop import run
    from call_router.log_setup import configure_logging
    from call_router.settings import get_settings

    settings = get_settings()
    configure_logging(settings)
    run(serve(settings), use_uvloop=settings.agi_uvloop)
