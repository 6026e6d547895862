# The call log's FastAGI-side writes: bursts of arrivals and timeline events, menu results,
# the tenant decision and what the speech menu heard (one row per (call, key), idempotent).

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select

from call_router import tenants
from call_router.call_event_kinds import EVENT_MENU_RESULT, EVENT_UTTERANCE
from call_router.call_log_core import (
    CallArrival,
    CallLogCore,
    MenuResult,
    TimelineEntry,
    merge_call,
)
from call_router.call_log_sql import (
    MAX_KEY,
    MAX_KIND,
    call_by_linkedid,
    cap,
    insert_events,
    known_call_ids,
    printable,
)
from call_router.call_rows_sql import insert_arrivals, update_menu_results
from call_router.models import Call

# A transcript longer than this is not a housing problem any more; keep the row small.
_MAX_TRANSCRIPT = 2000


class CallTimeline(CallLogCore):
    def ensure_calls(self, arrivals: list[CallArrival]) -> dict[str, int]:
        """`ensure_call` for many calls at once (the FastAGI writer's bursts): their ids.

        One statement straight to the driver (call_router/call_arrivals_sql.py): the new rows,
        each with its dialled number's tenant by subquery, and the ids it created. Only when
        some calls had a row already (the router, an earlier pass) are those read and merged,
        as `ensure_call` would.
        """
        if not arrivals:
            return {}
        with self._session() as session:
            fresh: dict[str, dict[str, Any]] = {}
            for arrival in arrivals:
                values = self._call_values(arrival, arrival.started_at or self._clock())
                earlier = fresh.get(values["linkedid"])
                if earlier is None:
                    fresh[values["linkedid"]] = values
                else:
                    earlier["started_at"] = min(earlier["started_at"], values["started_at"])
            known = insert_arrivals(session, list(fresh.values()))
            there = [values for linkedid, values in fresh.items() if linkedid not in known]
            if there:
                # Created before (or meanwhile, by the router): merge as ensure_call would.
                tenant_of = tenants.tenants_for_numbers(
                    session, {values["dialed_number"] for values in there}
                )
                rows = session.scalars(
                    select(Call).where(Call.linkedid.in_([values["linkedid"] for values in there]))
                )
                for row in rows:
                    values = fresh[row.linkedid]
                    values["tenant_id"] = tenant_of.get(values["dialed_number"])
                    merge_call(row, values)
                    known[row.linkedid] = row.id
                session.flush()
            return known

    def apply_menu_results(
        self, results: list[MenuResult], call_ids: Mapping[str, int] | None = None
    ) -> None:
        """The call columns of many `record_menu_result`s, in order (the latest pass wins).

        The timeline entries (`menu_result_entry`) go in with `record_events`, in the order
        the caller's steps happened. One UPDATE per burst (call_router/call_rows_sql.py).
        `call_ids`: calls known to have a row (linkedid -> id); only the others are looked up.
        """
        if not results:
            return
        with self._session() as session:
            given = call_ids or {}
            unknown = list({r.linkedid: None for r in results if r.linkedid not in given})
            known = set(known_call_ids(session, unknown)) if unknown else set()
            known.update(r.linkedid for r in results if r.linkedid in given)
            for result in results:
                if result.linkedid not in known:
                    # No arrival written for it (should not happen): create the row first.
                    self._ensure(
                        session,
                        result.linkedid,
                        caller_number=None,
                        caller_name=None,
                        started_at=result.at or self._clock(),
                    )
                    known.add(result.linkedid)
            session.flush()
            update_menu_results(session, results, self._clock())
            # ORM rows loaded earlier in this transaction must not hide these columns.
            session.expire_all()

    @staticmethod
    def menu_result_entry(result: MenuResult) -> TimelineEntry:
        data = {
            "choice": result.choice,
            "intent": result.intent,
            "queue": result.queue,
            "language": result.language,
        }
        return TimelineEntry(result.linkedid, EVENT_MENU_RESULT, EVENT_MENU_RESULT, result.at, data)

    def record_events(
        self, events: list[TimelineEntry], call_ids: Mapping[str, int] | None = None
    ) -> int:
        """Many timeline entries in one statement (the FastAGI writer's bursts).

        Same rules as `record_event`: an unknown call's entries and a (call, key) already there
        are skipped. Returns how many entries were known calls' (inserted or already there).
        `call_ids`: calls known to have a row (linkedid -> id); only the others are looked up.
        """
        if not events:
            return 0
        with self._session() as session:
            ids = dict(call_ids or {})
            unknown = list({e.linkedid: None for e in events if e.linkedid not in ids})
            if unknown:
                ids.update(known_call_ids(session, unknown))
            # Tuples in the table's column order (call_id, kind, key, at, data): a burst has
            # ~10 of them per call, so no dict per row.
            rows = [
                (
                    ids[event.linkedid],
                    event.kind[:MAX_KIND],
                    event.key[:MAX_KEY],
                    event.at or self._clock(),
                    event.data or {},
                )
                for event in events
                if event.linkedid in ids
            ]
            if rows:
                insert_events(session, rows)
            return len(rows)

    def record_menu_result(
        self,
        linkedid: str,
        *,
        choice: str | None,
        intent: str | None,
        queue: str,
        language: str | None,
        at: datetime | None = None,
    ) -> None:
        at = at or self._clock()
        with self._session() as session:
            call = call_by_linkedid(session, linkedid) or self._ensure(
                session, linkedid, caller_number=None, caller_name=None, started_at=at
            )
            entry = self.menu_result_entry(MenuResult(linkedid, choice, intent, queue, language))
            self._insert_event(session, call.id, entry.kind, entry.key, at, entry.data)
            _apply_menu_result(call, choice, intent, queue, language, at)

    def record_tenant(
        self,
        linkedid: str,
        *,
        tenant_id: int | None,
        source: str,
        building_id: int | None = None,
        at: datetime | None = None,
    ) -> None:
        """The menu's decision of the call's company (call_router/tenant_routing.py): it
        overrides the dialled number's (a centre number's caller placed with a tenant). Once
        per source (idempotent: the timeline key)."""
        at = at or self._clock()
        with self._session() as session:
            call = call_by_linkedid(session, linkedid) or self._ensure(
                session, linkedid, caller_number=None, caller_name=None, started_at=at
            )
            data = {"tenant_id": tenant_id, "source": source, "building_id": building_id}
            if not self._insert_event(session, call.id, "tenant", f"tenant:{source}", at, data):
                return
            call.tenant_id = tenant_id
            call.tenant_source = cap(source, 16)
            if building_id is not None:
                call.building_id = building_id

    def record_speech(
        self,
        linkedid: str,
        *,
        transcript: str | None,
        intent: str | None,
        confidence: float | None,
        utterance_path: str | None,
        at: datetime | None = None,
    ) -> bool:
        """Store what the caller said on the call; False if the call is unknown or already stored.

        The transcript is the caller's words: kept as text (non-printables dropped), never
        interpreted. Keyed by the utterance file, so a retried write changes nothing; the latest
        utterance of the call wins the columns, as the latest menu pass does.
        """
        text = cap(printable(transcript), _MAX_TRANSCRIPT)
        if confidence is not None and not math.isfinite(confidence):
            confidence = None  # NaN is no confidence, and not valid JSON for the timeline
        path = cap(utterance_path, 255)
        ident = path or f"{text}|{intent}|{confidence}"
        key = "utterance:" + hashlib.sha1(ident.encode("utf-8", "replace")).hexdigest()[:20]
        data = {
            "transcript": text,
            "intent": cap(intent, 32),
            "confidence": confidence,
            "utterance_path": path,
        }
        with self._session() as session:
            call = call_by_linkedid(session, linkedid)
            if call is None or not self._insert_event(
                session, call.id, EVENT_UTTERANCE, key, at, data
            ):
                return False
            call.transcript = text
            call.intent_confidence = confidence
            call.utterance_path = path
            return True


def _apply_menu_result(
    call: Call,
    choice: str | None,
    intent: str | None,
    queue: str,
    language: str | None,
    at: datetime,
) -> None:
    # The latest menu pass wins (a caller may go through the menu again).
    call.menu_choice = cap(choice, 32)
    call.intent = cap(intent, 32)
    call.language = cap(language, 8)
    call.menu_ended_at = at
    if call.queue_joined_at is None:
        call.queue = cap(queue, 32)
