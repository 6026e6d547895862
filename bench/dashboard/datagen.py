"""A realistic, reproducible call log for the dashboard benchmark, bulk-loaded with COPY.

Shape (seeded, so two runs make the same log): calls spread over `days` days with a working-day
profile (peaks 09-12 and 14-17 local, quiet nights, weekends at 60 %), residents who call again
(a few hundred thousand numbers, some very often), keypad and speech menus (transcripts and
confidences on ~60 % of the calls), intents mapped to queues, ~85 % answered with waits and talk
times drawn from skewed distributions, ~8 % abandoned in the queue, the rest menu hang-ups,
voicemail and callbacks; 60 operators with log-in, pauses and log-out every working day; 4-6
timeline events per call (what the detail page shows). The last minutes hold calls still in
progress, so the wallboard has live work to show.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

INTENT_QUEUE = {
    "water": "plumbing",
    "sewage": "plumbing",
    "heating": "heating",
    "electricity": "electricity",
    "lift": "lift",
    "meters": "meters",
    "billing": "meters",
    "gas": "duty",
    "operator": "coordinator",
}
INTENT_WEIGHTS = {
    "water": 22,
    "heating": 20,
    "electricity": 12,
    "lift": 10,
    "sewage": 6,
    "meters": 10,
    "billing": 8,
    "gas": 2,
    "operator": 10,
}
PHRASES = {
    "water": "нет горячей воды",
    "sewage": "засор канализации в подъезде",
    "heating": "холодные батареи",
    "electricity": "нет света в квартире",
    "lift": "лифт не работает",
    "meters": "передать показания счётчиков",
    "billing": "вопрос по квитанции",
    "gas": "пахнет газом",
    "operator": "соедините с оператором",
}
# Share of calls per local hour 00..23 (a city housing hotline: mornings and afternoons).
HOUR_PROFILE = [1, 1, 1, 1, 1, 2, 4, 8, 14, 18, 18, 16, 12, 13, 15, 15, 14, 12, 9, 7, 5, 4, 3, 2]
OPERATORS = 60
RESIDENTS = 250_000
IN_PROGRESS_MINUTES = 3

CALL_COLUMNS = (
    "id",
    "linkedid",
    "channel",
    "caller_number",
    "caller_number_raw",
    "caller_name",
    "dialed_number",
    "language",
    "started_at",
    "menu_ended_at",
    "menu_choice",
    "intent",
    "queue",
    "queue_joined_at",
    "answered_at",
    "operator",
    "ended_at",
    "hangup_cause",
    "hangup_by",
    "outcome",
    "wait_seconds",
    "talk_seconds",
    "transcript",
    "intent_confidence",
    "utterance_path",
)
EVENT_COLUMNS = ("call_id", "at", "kind", "key", "data")


@dataclass(frozen=True)
class Shape:
    calls: int
    days: int
    seed: int
    # The log's last moment (UTC, naive as stored); the wallboard's "now" is close to it.
    end: datetime


def operator_roster() -> list[tuple[str, str]]:
    """(name, sip login) of the bench's operators."""
    return [(f"Оператор {n:02d}", f"op{n:03d}") for n in range(1, OPERATORS + 1)]


def _start_times(shape: Shape, rng: random.Random) -> list[datetime]:
    """`shape.calls` start times over the last `days` days, oldest first."""
    first_day = (shape.end - timedelta(days=shape.days)).replace(hour=0, minute=0, second=0)
    days = [first_day + timedelta(days=d) for d in range(shape.days + 1)]
    day_weights = [0.6 if d.weekday() >= 5 else 1.0 for d in days]
    # Moscow local hours are UTC+3: shift the profile so peaks land in the local morning.
    hours = list(range(24))
    hour_weights = [HOUR_PROFILE[(h + 3) % 24] for h in hours]
    picked_days = rng.choices(days, day_weights, k=shape.calls)
    picked_hours = rng.choices(hours, hour_weights, k=shape.calls)
    times = []
    for day, hour in zip(picked_days, picked_hours, strict=True):
        at = day + timedelta(hours=hour, seconds=rng.random() * 3600)
        if at < shape.end:
            times.append(at)
    # Rejected future moments on the last day: pad with moments in its past hours.
    while len(times) < shape.calls:
        times.append(shape.end - timedelta(seconds=rng.random() * 6 * 3600))
    times.sort()
    return times


def _number(rng: random.Random) -> str:
    # A Zipf-like pick: a few residents call very often, most once or twice.
    resident = int(RESIDENTS * rng.random() ** 2.2)
    return f"+7495{3000000 + resident:07d}"


def generate(shape: Shape) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    """(call row, its event rows) for every call, oldest first; ids from 1."""
    rng = random.Random(shape.seed)
    roster = operator_roster()
    intents = list(INTENT_WEIGHTS)
    intent_weights = list(INTENT_WEIGHTS.values())
    live_from = shape.end - timedelta(minutes=IN_PROGRESS_MINUTES)
    for call_id, start in enumerate(_start_times(shape, rng), start=1):
        linkedid = f"{start.timestamp():.6f}.{call_id}"
        anonymous = rng.random() < 0.03
        number = "anonymous" if anonymous else _number(rng)
        name = None if anonymous or rng.random() < 0.7 else f"Житель {call_id % 9973}"
        speech = rng.random() < 0.6
        intent = rng.choices(intents, intent_weights)[0]
        menu_seconds = rng.uniform(5, 25)
        menu_end = start + timedelta(seconds=menu_seconds)
        in_progress = start >= live_from
        events: list[tuple[Any, ...]] = []
        row: dict[str, Any] = dict.fromkeys(CALL_COLUMNS)
        row.update(
            id=call_id,
            linkedid=linkedid,
            channel=f"PJSIP/pstn-{call_id:08x}",
            caller_number=number,
            caller_number_raw=None if anonymous else number.replace("+7", "8"),
            caller_name=name,
            dialed_number="500100",
            language="ru",
            started_at=start,
        )
        events.append((call_id, start, "start", f"start:{linkedid}", '{"dialed": "500100"}'))
        fate = rng.random()
        if fate < 0.06 and not in_progress:  # hung up in the menu
            row.update(ended_at=menu_end, outcome="abandoned_in_menu", hangup_by="caller")
        else:
            confidence = round(rng.betavariate(8, 2), 3) if speech else None
            row.update(
                menu_ended_at=menu_end,
                menu_choice=None if speech else str(intents.index(intent) + 1),
                intent=intent,
                queue=INTENT_QUEUE[intent],
                queue_joined_at=menu_end,
                transcript=PHRASES[intent] if speech else None,
                intent_confidence=confidence,
                utterance_path=f"/srv/hotline/recordings/utterances/{linkedid}-1.wav"
                if speech
                else None,
            )
            events.append(
                (
                    call_id,
                    menu_end,
                    "menu_result",
                    f"menu:{linkedid}",
                    f'{{"intent": "{intent}", "queue": "{INTENT_QUEUE[intent]}"}}',
                )
            )
            events.append((call_id, menu_end, "queue_join", f"join:{linkedid}", '{"position": 1}'))
            _queue_fate(row, events, rng, roster, start, menu_end, shape.end, in_progress)
        if row["ended_at"] is not None:
            events.append(
                (call_id, row["ended_at"], "hangup", f"hangup:{linkedid}", '{"cause": "16"}')
            )
            row["hangup_cause"] = "16"
        yield tuple(row[c] for c in CALL_COLUMNS), events


def _queue_fate(
    row: dict[str, Any],
    events: list[tuple[Any, ...]],
    rng: random.Random,
    roster: list[tuple[str, str]],
    start: datetime,
    joined: datetime,
    end: datetime,
    in_progress: bool,
) -> None:
    call_id, linkedid = row["id"], row["linkedid"]
    fate = rng.random()
    if in_progress:
        wait = rng.expovariate(1 / 30)
        answered = joined + timedelta(seconds=wait)
        if answered < end and fate < 0.7:
            op = rng.choice(roster)[0]
            row.update(answered_at=answered, operator=op, wait_seconds=int(wait))
        return
    if fate < 0.86:
        wait = min(600.0, rng.expovariate(1 / 22))
        talk = min(3600.0, rng.lognormvariate(math.log(150), 0.6))
        answered = joined + timedelta(seconds=wait)
        ended = answered + timedelta(seconds=talk)
        op = rng.choice(roster)[0]
        row.update(
            answered_at=answered,
            operator=op,
            ended_at=ended,
            outcome="answered",
            wait_seconds=int(wait),
            talk_seconds=int(talk),
            hangup_by=rng.choice(("caller", "agent")),
        )
        events.append(
            (call_id, answered, "agent_connect", f"connect:{linkedid}", f'{{"operator": "{op}"}}')
        )
        events.append(
            (call_id, ended, "agent_complete", f"complete:{linkedid}", f'{{"talk": {int(talk)}}}')
        )
    elif fate < 0.94:
        wait = rng.expovariate(1 / 70)
        ended = joined + timedelta(seconds=wait)
        row.update(
            ended_at=ended, outcome="abandoned_in_queue", wait_seconds=int(wait), hangup_by="caller"
        )
        events.append((call_id, ended, "abandon", f"abandon:{linkedid}", '{"position": 2}'))
    else:
        wait = rng.uniform(120, 300)
        ended = joined + timedelta(seconds=wait + 30)
        outcome = rng.choice(("voicemail", "callback_requested", "queue_timeout"))
        row.update(ended_at=ended, outcome=outcome, wait_seconds=int(wait), hangup_by="system")


def state_log(shape: Shape) -> Iterator[tuple[Any, ...]]:
    """(sip_login, at, action, reason, source, data) of every operator's working days."""
    rng = random.Random(shape.seed + 1)
    first = (shape.end - timedelta(days=shape.days)).replace(hour=0, minute=0, second=0)
    for _, login in operator_roster():
        for d in range(shape.days + 1):
            day = first + timedelta(days=d)
            if day.weekday() >= 5 and rng.random() < 0.6:
                continue
            # Working day 08:00-17:00 Moscow = 05:00-14:00 UTC, with jitter.
            t = day + timedelta(hours=5, minutes=rng.uniform(-20, 20))
            moments: list[tuple[datetime, str, str | None]] = [(t, "login", None)]
            for why, mean_minutes in (("break", 12), ("lunch", 45), ("break", 12)):
                t += timedelta(hours=rng.uniform(2, 3))
                moments.append((t, "pause", why))
                t += timedelta(minutes=rng.expovariate(1 / mean_minutes))
                moments.append((t, "unpause", None))
            moments.append((t + timedelta(hours=rng.uniform(0.5, 1.5)), "logout", None))
            for at, action, reason in moments:
                if at < shape.end:
                    yield (login, at, action, reason, "cli", "{}")


def load(conn: psycopg.Connection[Any], shape: Shape, progress: Any = print) -> None:
    """Empty the call log tables and COPY the generated log in (one transaction)."""
    with conn.cursor() as cur:
        cur.execute(
            "TRUNCATE calls, call_events, operators, operator_skills, agent_state_log, "
            "agent_states RESTART IDENTITY CASCADE"
        )
        for n, (name, login) in enumerate(operator_roster(), start=1):
            cur.execute(
                "INSERT INTO operators (id, name, sip_login, sip_password, language, enabled,"
                " created_at) VALUES (%s, %s, %s, %s, 'ru', true, %s)",
                (n, name, login, f"bench-{login}-secret", shape.end - timedelta(days=shape.days)),
            )
        calls_sql = f"COPY calls ({', '.join(CALL_COLUMNS)}) FROM STDIN"
        events: list[tuple[Any, ...]] = []
        with cur.copy(calls_sql) as copy:
            for n, (row, call_events) in enumerate(generate(shape), start=1):
                copy.write_row(row)
                events.extend(call_events)
                if n % 100_000 == 0:
                    progress(f"  calls: {n:,}")
        progress(f"  events: {len(events):,}")
        with cur.copy(f"COPY call_events ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy:
            for event in events:
                copy.write_row(event)
        cols = "sip_login, at, action, reason, source, data"
        with cur.copy(f"COPY agent_state_log ({cols}) FROM STDIN") as copy:
            for entry in state_log(shape):
                copy.write_row(entry)
        for table in ("calls", "call_events", "operators", "agent_state_log"):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" (SELECT coalesce(max(id), 1) FROM {table}))"
            )
    conn.commit()


def shift(conn: psycopg.Connection[Any], by: timedelta) -> None:
    """Move the whole log forward in time (a cached log stays "today" on a later day)."""
    seconds = int(by.total_seconds())
    interval = f"interval '{seconds} seconds'"
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE calls SET "
            + ", ".join(
                f"{c} = {c} + {interval}"
                for c in (
                    "started_at",
                    "menu_ended_at",
                    "queue_joined_at",
                    "answered_at",
                    "ended_at",
                )
            )
        )
        cur.execute(f"UPDATE call_events SET at = at + {interval}")
        cur.execute(f"UPDATE agent_state_log SET at = at + {interval}")
    conn.commit()


def utc_now_naive() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
