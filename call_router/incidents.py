"""Incidents (known outages callers hear before the menu): validate, create, end, list, speak.

One place for what `hotline incidents` and the dashboard's /incidents page both do. Input
problems are collected as `InputProblem`s (a field and an English message, the one the CLI
prints); the page translates them by `code`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from call_router import areas, date_range
from call_router.flow_models import Incident
from call_router.flows.conditions import resolve_timezone
from call_router.models import CallEvent
from call_router.settings import Settings

CATEGORIES = ("water", "hot_water", "heating", "electricity", "lift", "gas", "sewage", "other")
MAX_MESSAGE = 400
MAX_AREA = 400


@dataclass(frozen=True)
class InputProblem:
    field: str  # the form field: category, message_ru, message_en, until
    code: str  # stable id, for translations
    message: str  # English, as the CLI prints it


class IncidentInputError(ValueError):
    def __init__(self, problems: list[InputProblem]) -> None:
        super().__init__(problems[0].message)
        self.problems = problems


@dataclass(frozen=True)
class NewIncident:
    """A validated incident, ready to be stored."""

    category: str
    areas: list[str]
    messages: dict[str, str]
    expected_end: datetime | None


@dataclass
class IncidentSummary:
    incident: Incident
    heard: int = 0
    hung_up_after: int = 0

    def active_at(self, now: datetime) -> bool:
        """Callers hear it: not ended and not past its expected end."""
        i = self.incident
        return i.ended_at is None and (i.expected_end is None or i.expected_end > now)

    def as_json(self) -> dict[str, Any]:
        i = self.incident
        return {
            "id": i.id,
            "category": i.category,
            "areas": list(i.areas or []),
            "message": dict(i.message or {}),
            "expected_end": i.expected_end.isoformat() if i.expected_end else None,
            "ended_at": i.ended_at.isoformat() if i.ended_at else None,
            "heard": self.heard,
            "hung_up_after": self.hung_up_after,
        }


@dataclass(frozen=True)
class Spoken:
    """Prompt files written (relative to recordings/), or why none were."""

    prompts: list[str] = field(default_factory=list)
    problem: str | None = None


def parse_until(text: str, now: datetime, tz_name: str | None) -> datetime:
    """`18:00` (today, or tomorrow if already past) or an ISO date-time, in the hotline's zone."""
    tz = resolve_timezone(tz_name)
    local_now = now.astimezone(tz)
    try:
        clock = time.fromisoformat(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError as exc:
            raise IncidentInputError(
                [InputProblem("until", "until_format", "use HH:MM or YYYY-MM-DD HH:MM")]
            ) from exc
        if not date_range.usable(moment):
            raise IncidentInputError(
                [InputProblem("until", "until_format", f"a date {date_range.RANGE_TEXT}")]
            ) from None
        return (moment if moment.tzinfo else moment.replace(tzinfo=tz)).astimezone(now.tzinfo)
    moment = datetime.combine(local_now.date(), clock, tzinfo=tz)
    if moment <= local_now:
        moment += timedelta(days=1)
    return moment.astimezone(now.tzinfo)


def clean_message(text: str) -> str:
    """One line of printable text, at most MAX_MESSAGE characters (it is spoken, then shown)."""
    return " ".join("".join(ch for ch in text if ch.isprintable()).split())[:MAX_MESSAGE]


def split_areas(text: str) -> list[str]:
    return [a.strip() for a in text.split(",") if a.strip()]


def validate(
    category: str,
    message_ru: str,
    message_en: str,
    *,
    areas: str = "",
    until: str | None = None,
    now: datetime,
    tz_name: str | None,
    require_future: bool = False,
) -> NewIncident:
    """Every problem at once (IncidentInputError, in CLI order: category, messages, until)."""
    problems: list[InputProblem] = []
    if category not in CATEGORIES:
        problems.append(
            InputProblem("category", "category", f"category must be one of {', '.join(CATEGORIES)}")
        )
    messages = {"ru": clean_message(message_ru), "en": clean_message(message_en)}
    for lang, text in messages.items():
        if not text:
            problems.append(InputProblem(f"message_{lang}", "messages", "both messages are needed"))
    expected_end = None
    if until and until.strip():
        try:
            expected_end = parse_until(until.strip(), now, tz_name)
        except IncidentInputError as exc:
            problems += exc.problems
        else:
            if require_future and expected_end <= now:
                problems.append(InputProblem("until", "until_past", "the end time has passed"))
    area_list = [clean_message(a)[:MAX_AREA] for a in split_areas(areas)]
    if problems:
        raise IncidentInputError(problems)
    return NewIncident(category, area_list, messages, expected_end)


def place(session: Session, new: NewIncident) -> NewIncident:
    """The incident's areas as nodes of the imported hierarchy (call_router/areas.py): a
    typed path is stored as the node's path; one that names no node is refused."""
    stored, unknown = areas.resolve_targets(session, new.areas)
    if unknown:
        raise IncidentInputError(
            [
                InputProblem(
                    "areas",
                    "unknown_area",
                    f"no such area: {', '.join(unknown)} (see `hotline areas list`)",
                )
            ]
        )
    return replace(new, areas=stored)


def create(session: Session, new: NewIncident, now: datetime) -> Incident:
    new = place(session, new)
    incident = Incident(
        category=new.category,
        areas=new.areas,
        message=new.messages,
        created_at=now,
        expected_end=new.expected_end,
    )
    session.add(incident)
    session.flush()
    return incident


def end(session: Session, incident_id: int, now: datetime) -> Incident | None:
    """End it now (callers no longer hear it); None if there is no such incident."""
    incident = session.get(Incident, incident_id)
    if incident is not None and incident.ended_at is None:
        incident.ended_at = now
    return incident


def summaries(
    session: Session, *, ended: bool | None = False, limit: int | None = None
) -> list[IncidentSummary]:
    """Newest first (ended: False not ended yet, True ended only, None all), each with how
    many callers heard it and how many then hung up."""
    query = select(Incident).order_by(Incident.id.desc())
    if ended is not None:
        done = Incident.ended_at.is_not(None)
        query = query.where(done if ended else ~done)
    if limit is not None:
        query = query.limit(limit)
    rows = [IncidentSummary(i) for i in session.scalars(query)]
    heard, helped = effect(session)
    for row in rows:
        row.heard = heard.get(row.incident.id, 0)
        row.hung_up_after = helped.get(row.incident.id, 0)
    return rows


def effect(session: Session) -> tuple[dict[int, int], dict[int, int]]:
    """Per incident: calls that heard it, and those that hung up at the announcement.

    A caller who leaves right after hearing their outage did not need a queue place: that is
    the measure of how much the announcement shortens the queues.
    """
    heard: dict[int, int] = {}
    helped: dict[int, int] = {}
    announced = session.execute(
        select(CallEvent.call_id, CallEvent.data).where(CallEvent.kind == "incident_announced")
    ).all()
    if not announced:
        return heard, helped
    left = {
        call_id: data
        for call_id, data in session.execute(
            select(CallEvent.call_id, CallEvent.data).where(CallEvent.kind == "hangup_in_menu")
        ).all()
    }
    for call_id, data in announced:
        for incident_id in data.get("incidents", []):
            heard[incident_id] = heard.get(incident_id, 0) + 1
            if call_id in left and left[call_id].get("node") == data.get("node"):
                helped[incident_id] = helped.get(incident_id, 0) + 1
    return heard, helped


def speak(settings: Settings, incident_id: int, messages: dict[str, str]) -> Spoken:
    """Synthesise the announcement per language with the flows' voices (espeak-ng)."""
    # The synthesiser lives with the prompt builder; imported here so reading incidents
    # never needs it.
    from call_router.flows.prompts import PromptError, prompt_catalogue, prompts_root, synthesize

    try:
        voices = prompt_catalogue(settings.flows_dir).voices
        written = []
        for lang, text in messages.items():
            # The flow engine plays it as the `incident_<id>` prompt.
            target = prompts_root(settings) / lang / f"incident_{incident_id}.wav"
            synthesize(text, voices.get(lang, lang), target)
            written.append(str(target.relative_to(settings.recordings_dir)))
        return Spoken(written)
    except PromptError as exc:
        return Spoken([], str(exc))
