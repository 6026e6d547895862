"""`hotline callbacks …`: the operators' callback work list from the command line.

Registered by hotline/cli.py as `hotline callbacks`. Every command prints JSON with --json
(scripts and tests) and a short table otherwise; refusals exit 1 with the stable error code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from call_router.settings import Settings, get_settings
from hotline.cli_support import JsonOpt, fail, open_database

if TYPE_CHECKING:
    from call_router.db import Database

app = typer.Typer(
    help="The callback list: claim, call back, record outcomes.", no_args_is_help=True
)

CallbackId = Annotated[int, typer.Argument(help="Callback entry id (see `callbacks list`).")]

OUTCOMES = ("reached", "no_answer", "busy", "wrong_number", "retry")


def _database(settings: Settings) -> Database:
    from call_router import live_state

    db = open_database(settings)
    # Claims and outcomes made here reach the operators' callback pages live.
    live_state.publish_callback_changes(db, settings.redis_url, settings.redis_prefix)
    return db


def _row(cb: Any) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": cb.id,
        "caller_number": cb.caller_number,
        "status": cb.status,
        "reason": cb.reason,
        "attempts": cb.attempts,
        "created_at": iso(cb.created_at),
        "queue": cb.queue,
        "intent": cb.intent,
        "category": cb.category,
        "priority": cb.priority,
        "due_at": iso(cb.due_at),
        "claimed_by": cb.claimed_by,
        "claimed_until": iso(cb.claimed_until),
        "tries": cb.tries,
        "next_attempt_at": iso(cb.next_attempt_at),
        "last_outcome": cb.last_outcome,
        "resolved_by": cb.resolved_by,
        "note": cb.note,
    }


def _fail(code: str, message: str) -> typer.Exit:
    """A refusal with its stable code first (`bad_time: ...`); exit 1."""
    return fail(f"{code}: {message}")


def _change_entry(settings: Settings, change: Callable[[Any], Any], as_json: bool) -> None:
    """Apply one change to an entry in its own transaction and print the entry, or fail with
    the refusal's stable code."""
    from call_router.callbacks import CallbackError

    db = _database(settings)
    try:
        with db.session() as session:
            row = _row(change(session))
    except CallbackError as exc:
        raise _fail(exc.code, str(exc)) from exc
    _print(row, as_json)


def _print(row: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(row, ensure_ascii=False))
        return
    claim = f" claimed by {row['claimed_by']}" if row.get("claimed_by") else ""
    typer.echo(
        f"{row['id']:>5} {row['caller_number']:<16} {row['status']:<8} "
        f"{row['reason']:<20} attempts {row['attempts']}  {row['created_at']}"
        f"  prio {row.get('priority', 0)} due {row.get('due_at')}{claim}"
    )


@app.command("list")
def list_command(
    status_filter: Annotated[str, typer.Option("--status", help="open, closed or all")] = "open",
    as_json: JsonOpt = False,
) -> None:
    """Open entries in calling order (emergencies, repeat callers, deadline, age)."""
    from call_router.callback_list import list_callbacks
    from call_router.models import utcnow

    if status_filter not in ("open", "closed", "all"):
        raise typer.BadParameter("open, closed or all", param_hint="--status")

    db = _database(get_settings())
    with db.session() as session:
        rows = [
            _row(cb)
            for cb in list_callbacks(
                session, None if status_filter == "all" else status_filter, now=utcnow()
            )
        ]
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    for row in rows:
        _print(row, False)


@app.command("claim")
def claim_command(
    callback_id: CallbackId,
    operator: Annotated[str, typer.Option("--operator", help="Operator SIP login.")],
    as_json: JsonOpt = False,
) -> None:
    """Take an entry (a lock that lapses after callback_claim_timeout seconds)."""
    from call_router import callback_claims
    from call_router.models import utcnow

    settings = get_settings()
    _change_entry(
        settings,
        lambda session: callback_claims.claim(
            session, callback_id, operator, utcnow(), timeout=settings.callback_claim_timeout
        ),
        as_json,
    )


@app.command("release")
def release_command(
    callback_id: CallbackId,
    operator: Annotated[
        str | None,
        typer.Option("--operator", help="Operator SIP login: release only this one's claim."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Give an entry back (only your own claim with --operator; any claim without)."""
    from call_router import callback_claims
    from call_router.models import utcnow

    _change_entry(
        get_settings(),
        lambda session: callback_claims.release(session, callback_id, utcnow(), operator=operator),
        as_json,
    )


@app.command("call")
def call_command(
    callback_id: CallbackId,
    operator: Annotated[str, typer.Option("--operator", help="Operator SIP login.")],
    as_json: JsonOpt = False,
) -> None:
    """Click-to-call: ring the operator's phone, then the resident (waits for the operator)."""
    from call_router import callbacks, click_to_call

    settings = get_settings()
    db = _database(settings)
    try:
        placed, result = click_to_call.call_back(settings, db, callback_id, operator)
    except callbacks.CallbackError as exc:
        raise _fail(exc.code, str(exc)) from exc
    out = {
        "callback_id": placed.callback_id,
        "call_id": placed.call_id,
        "linkedid": placed.linkedid,
        "operator_answered": result.ok,
        "reason": result.reason,
    }
    if as_json:
        typer.echo(json.dumps(out, ensure_ascii=False))
    else:
        state = "operator answered, dialling the resident" if result.ok else "operator missed it"
        typer.echo(f"callback {callback_id}: {state} (call {placed.call_id})")
    if not result.ok:
        raise typer.Exit(2)


@app.command("outcome")
def outcome_command(
    callback_id: CallbackId,
    outcome: Annotated[str, typer.Argument(help=" | ".join(OUTCOMES))],
    at: Annotated[
        str | None, typer.Option("--at", help="retry: ISO time, e.g. 2026-11-24T10:00+03:00")
    ] = None,
    note: Annotated[
        str | None, typer.Option("--note", help="Free text kept in the entry's history.")
    ] = None,
    operator: Annotated[
        str | None, typer.Option("--operator", help="Operator SIP login who made the call.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Record how a call-back went: closes the entry or schedules the next try."""
    from call_router import callback_claims, callbacks
    from call_router.callback_policy import Outcome
    from call_router.models import utcnow

    if outcome not in OUTCOMES:
        raise _fail("bad_outcome", f"outcome must be one of {', '.join(OUTCOMES)}")
    retry_at = None
    if at is not None:
        try:
            retry_at = datetime.fromisoformat(at)
        except ValueError as exc:
            raise _fail("bad_time", f"not an ISO time: {at!r}") from exc
        if retry_at.tzinfo is None:
            raise _fail("bad_time", "--at needs a time zone (e.g. +03:00 or Z)")
    settings = get_settings()
    _change_entry(
        settings,
        lambda session: callback_claims.record_outcome(
            session,
            callback_id,
            Outcome(outcome),
            utcnow(),
            rules=callbacks.CallbackRules.from_settings(settings),
            operator=operator,
            retry_at=retry_at,
            note=note,
        ),
        as_json,
    )


@app.command("show")
def show_command(callback_id: CallbackId, as_json: JsonOpt = False) -> None:
    """One entry with its full history."""
    from call_router import callback_list

    db = _database(get_settings())
    with db.session() as session:
        entry = callback_list.get_callback(session, callback_id)
        if entry is None:
            raise _fail("not_found", f"no callback {callback_id}")
        row = _row(entry)
        row["history"] = [
            {
                "at": h.at.isoformat(),
                "action": h.action,
                "operator": h.operator,
                "outcome": h.outcome,
                "call_id": h.call_id,
                "note": h.note,
                "data": h.data,
            }
            for h in callback_list.history(session, callback_id)
        ]
    if as_json:
        typer.echo(json.dumps(row, ensure_ascii=False))
        return
    _print(row, False)
    for h in row["history"]:
        who = f" {h['operator']}" if h["operator"] else ""
        what = f" {h['outcome']}" if h["outcome"] else ""
        call = f" call {h['call_id']}" if h["call_id"] else ""
        typer.echo(f"      {h['at']}  {h['action']}{who}{what}{call}  {h['note'] or ''}")
