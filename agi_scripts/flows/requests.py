"""Service requests on the phone: what the menu reads out to a caller with open requests, and
the resident's answer to the automatic "is it fixed?" call (call_router/request_feedback.py).

The menu's hot path reads nothing per call: every open request's (number, category, state,
queue) is held in memory by caller number and read again once per `ttl` seconds, by one
caller (the others meanwhile get what is in memory), as the incidents are
(agi_scripts/flows/services.py DbLookups). A caller with no open request costs a dict lookup.
"""

from __future__ import annotations

from sqlalchemy import select

from agi_scripts.flows.runtime import OpenRequest
from agi_scripts.flows.snapshots import Refreshed
from call_router import feedback_calls, request_feedback
from call_router import request_lifecycle as life
from call_router import service_requests as store
from call_router.db import Database
from call_router.models import Call, utcnow
from call_router.numbers import ANONYMOUS, normalize_number
from call_router.request_lifecycle import Category
from call_router.request_models import NUMBER_BASE, ServiceRequest
from call_router.request_reads import open_requests_with_callers
from call_router.routing import FALLBACK_QUEUE

# Open requests are read again this often (a status change reaches the menu within it).
REQUESTS_TTL = 5.0
ACTOR = "phone menu"


class CallerRequests:
    """The callers' open requests from memory (see the module's docstring), and the writes a
    call makes about them (link a call, the feedback answer). Writes are synchronous: the
    engine runs them in a worker thread."""

    def __init__(
        self,
        db: Database,
        country: str,
        categories: dict[str, Category] | None = None,
        *,
        ttl: float = REQUESTS_TTL,
    ) -> None:
        self._db = db
        self._country = country
        self._categories = categories if categories is not None else life.load_categories()
        self._open: Refreshed[dict[str, list[OpenRequest]]] = Refreshed(self._load, ttl)

    def _key(self, caller_number: str | None) -> str | None:
        number = normalize_number(caller_number, self._country)
        return None if number == ANONYMOUS else number

    def _queue(self, category: str) -> str:
        found = self._categories.get(category)
        return (found.queue if found is not None else None) or FALLBACK_QUEUE

    def _load(self) -> dict[str, list[OpenRequest]]:
        by_caller: dict[str, list[OpenRequest]] = {}
        with self._db.session() as session:
            rows = session.execute(
                open_requests_with_callers(
                    ServiceRequest.id,
                    ServiceRequest.category,
                    ServiceRequest.state,
                    ServiceRequest.tenant_id,
                    ServiceRequest.caller_number,
                )
            )
            for row_id, category, state, tenant_id, caller in rows:
                key = self._key(caller)
                if key is None:
                    continue
                by_caller.setdefault(key, []).append(
                    OpenRequest(
                        str(NUMBER_BASE + row_id), category, state, self._queue(category), tenant_id
                    )
                )
        return by_caller

    def open_requests(self, caller_number: str) -> list[OpenRequest]:
        return self._of(self._open.read(), caller_number)

    def open_if_fresh(self, caller_number: str) -> list[OpenRequest] | None:
        by_caller = self._open.if_fresh()
        return None if by_caller is None else self._of(by_caller, caller_number)

    def _of(self, by_caller: dict[str, list[OpenRequest]], caller_number: str) -> list[OpenRequest]:
        key = self._key(caller_number)
        return list(by_caller.get(key, [])) if key else []

    def link_call(self, linkedid: str, number: str) -> bool:
        with self._db.session() as session:
            call_id = session.scalar(select(Call.id).where(Call.linkedid == linkedid))
            if call_id is None:
                return False
            store.link_call(session, number, call_id, actor=ACTOR)
            return True

    # --- the automatic "is it fixed?" call -------------------------------------------------

    def feedback_caller(self, number: str) -> str | None:
        """The number the request was reported from (its remembered language is used)."""
        with self._db.session() as session:
            try:
                return store.get_request(session, number).caller_number
            except store.RequestError:
                return None

    def record_feedback(self, number: str, key: str, linkedid: str | None = None) -> str | None:
        """The resident's key; the request's state after it. None: refused, nothing changed
        (the request is no longer done: an operator moved it meanwhile). `linkedid`: the
        feedback call's, whose call-log row gets the answer in the same transaction."""
        try:
            with self._db.session() as session:
                answer = request_feedback.record_answer(session, number, key, linkedid=linkedid)
                return answer.state
        except store.RequestError:
            return None

    def note_feedback_call(self, linkedid: str, number: str, answer: str, key: str = "") -> bool:
        """The feedback call's answer on its call-log row when no request changed (no key, or
        the key refused): feedback_calls.NO_ANSWER, SOLVED or NOT_SOLVED."""
        extra: dict[str, str | int | bool | None] = {"key": key, "recorded": False} if key else {}
        with self._db.session() as session:
            return feedback_calls.note_answer(
                session, linkedid, answer, utcnow(), request_number=number, **extra
            )
