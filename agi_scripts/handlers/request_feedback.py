"""Route `request_feedback`: the automatic "is it fixed?" call once a request is done.

The router originates it (call_router/request_feedback_dialer.py) into [request-feedback],
which runs this route with the request number as its first argument and the recordings
folder as its second, once the resident answered. "Your request 1234 has been marked as
done. If the problem is solved, press 1; if not, press 2." 1 closes it, 2 reopens it
(call_router/request_feedback.py); no key (twice): "we will call again later", and the dialer's
next try (already scheduled) asks again. The prompts are in the resident's remembered
language, else the hotline's default. The answer (or its absence) also goes on the call's row
in the call log (call_router/feedback_calls.py; the key's with the request's change, in one
transaction). Its database work goes through the process's guard
(agi_scripts/database_guard.py): bounded, and its reads not even tried while the database is
away, so a resident who answers during an outage is not kept in silence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agi_scripts.agi import AgiChannel, AgiError, printable
from agi_scripts.database_guard import for_call
from call_router import channel_vars, feedback_calls
from call_router.request_feedback import SCORES, SOLVED
from call_router.routing import pick_language

if TYPE_CHECKING:
    from agi_scripts.call_context import CallContext
    from agi_scripts.flows.requests import CallerRequests

ASKS = 2
KEY_TIMEOUT_MS = 6000
DB_TIMEOUT = 5.0
# Reads before the first prompt: the resident has just answered and hears nothing meanwhile.
READ_TIMEOUT = 1.0


async def request_feedback(agi: AgiChannel, ctx: CallContext) -> None:
    number = ctx.env.get(channel_vars.ARG_LINKEDID)  # first argument: the request number
    root = ctx.env.get(channel_vars.ARG_RECORDINGS) or str(ctx.settings.recordings_dir)
    desk = ctx.flows.requests if ctx.flows is not None else None
    if not number.isascii() or not number.isdigit() or len(number) > 12 or desk is None:
        ctx.log.warning("feedback_bad_request", number=printable(number, 16))
        await agi.hangup()
        return
    ctx.log = ctx.log.bind(request=number)
    language = await _language(ctx, number)
    await agi.set_language(language)

    def prompt(name: str) -> str:
        return f"{root.rstrip('/')}/prompts/{language}/{name}"

    await agi.answer()
    key = ""
    for _ask in range(ASKS):
        key = await _play(agi, ctx, prompt("feedback_intro"), "12")
        if not key:
            key = await agi.say_digits(number, "12")
        if not key:
            key, _ = await agi.get_data(
                prompt("feedback_question"), timeout_ms=KEY_TIMEOUT_MS, max_digits=1
            )
        key = key[:1]
        if key in SCORES:
            break
    linkedid = await _linkedid(agi)
    if key not in SCORES:
        ctx.log.info("feedback_no_key")
        await _play(agi, ctx, prompt("feedback_later"), "")
        await agi.hangup()
        await _note_on_the_call(ctx, desk, linkedid, number, feedback_calls.NO_ANSWER)
        return
    # Always tried, bounded; a database failure is logged by the guard.
    state = await for_call(ctx).act(
        ctx.log, "record_feedback", desk.record_feedback, number, key, linkedid, timeout=DB_TIMEOUT
    )
    if state is None:  # failed (the next try, already scheduled, asks again) or refused
        ctx.log.warning("feedback_not_recorded", key=key)
        await _play(agi, ctx, prompt("feedback_later"), "")
        await agi.hangup()
        answer = feedback_calls.SOLVED if key == SOLVED else feedback_calls.NOT_SOLVED
        await _note_on_the_call(ctx, desk, linkedid, number, answer, key)
        return
    ctx.log.info("feedback_recorded", key=key, state=state)
    await _play(agi, ctx, prompt("feedback_solved" if key == SOLVED else "feedback_reopened"), "")
    await agi.hangup()


async def _note_on_the_call(
    ctx: CallContext,
    desk: CallerRequests,
    linkedid: str | None,
    number: str,
    answer: str,
    key: str = "",
) -> None:
    """The answer on the feedback call's row when the request did not change. After the
    hang-up: a database that is slow or away keeps nobody waiting in silence."""
    if linkedid:
        await for_call(ctx).act(
            ctx.log,
            "note_feedback_call",
            desk.note_feedback_call,
            linkedid,
            number,
            answer,
            key,
            timeout=DB_TIMEOUT,
        )


async def _linkedid(agi: AgiChannel) -> str | None:
    """The call's linkedid when it is a feedback call's row (the dialer's ChannelId)."""
    try:
        value = await agi.get_variable("CHANNEL(linkedid)")
    except AgiError:
        if agi.desynchronised:
            raise
        return None
    value = printable(value or "", 64)
    return value if feedback_calls.is_feedback_linkedid(value) else None


async def _language(ctx: CallContext, number: str) -> str:
    default = ctx.settings.default_language
    desk = ctx.flows.requests if ctx.flows is not None else None
    lookups = ctx.flows.lookups if ctx.flows is not None else None
    if desk is None or lookups is None:
        return default
    guard = for_call(ctx)
    # Unknown (None) when the read fails, is slow or the database is away: the default then.
    phone = await guard.read(
        ctx.log, "feedback_caller", desk.feedback_caller, number, timeout=READ_TIMEOUT
    )
    found = (
        await guard.read(
            ctx.log, "caller_language", lookups.caller_language, phone, timeout=READ_TIMEOUT
        )
        if phone
        else None
    )
    return pick_language(found, default) if found else default


async def _play(agi: AgiChannel, ctx: CallContext, path: str, escape: str) -> str:
    try:
        return await agi.stream_file(path, escape)
    except AgiError as exc:
        if agi.desynchronised:
            raise
        ctx.log.warning("prompt_failed", prompt=path, error=str(exc))
        return ""
