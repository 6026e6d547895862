"""The operators roster: who answers which queues, and their SIP credentials."""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from call_router.models import Operator, OperatorSkill
from call_router.routing import SUPPORTED_LANGUAGES
from call_router.settings import QUEUES

FIRST_LOGIN = 1001
# Logins name pjsip sections and dialplan extensions: a leading "_" would be a number pattern.
LOGIN_RE = re.compile(r"^[a-z0-9][a-z0-9_]{1,31}$")
# Names that already mean something in our pjsip.conf or dialplan.
RESERVED_LOGINS = frozenset(
    {"pstn", "global", "system", "hotline", "anonymous", "a", "e", "h", "i", "o", "s", "t"}
)
MAX_NAME = 80


class RosterError(ValueError):
    """Bad input for the roster; the message is shown to the admin as is."""


@dataclass(frozen=True)
class Skill:
    queue: str
    penalty: int = 0


# A queue penalty (Asterisk's queue member penalty): 0 = first choice; higher = only when the
# lower ones are busy. The one range the roster, the CLI and the rendered queues.conf accept.
PENALTY_MAX = 100


def parse_skills(spec: str, known: Collection[str] = QUEUES) -> list[Skill]:
    """`plumbing,coordinator:5` → skills; a penalty makes the queue overflow-only for them.
    `known`: the queues allowed (the centre's, and tenants' own where they apply)."""
    skills: list[Skill] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        queue, _, penalty = item.partition(":")
        queue = queue.strip().lower()
        if queue not in known:
            raise RosterError(f"unknown queue {queue!r}; known queues: {', '.join(known)}")
        try:
            value = int(penalty) if penalty else 0
        except ValueError:
            raise RosterError(
                f"penalty for {queue!r} must be a whole number, got {penalty!r}"
            ) from None
        if not 0 <= value <= PENALTY_MAX:
            raise RosterError(f"penalty for {queue!r} must be 0..{PENALTY_MAX}")
        if any(s.queue == queue for s in skills):
            raise RosterError(f"queue {queue!r} is listed twice")
        skills.append(Skill(queue, value))
    if not skills:
        raise RosterError("an operator needs at least one queue")
    return skills


def clean_name(name: str) -> str:
    # Control characters become spaces so "Anna\nPetrova" stays two words.
    cleaned = " ".join("".join(ch if ch.isprintable() else " " for ch in name).split())
    if not cleaned:
        raise RosterError("operator name is empty")
    return cleaned[:MAX_NAME]


def next_login(session: Session) -> str:
    numeric = [
        int(login) for (login,) in session.execute(select(Operator.sip_login)) if login.isdigit()
    ]
    return str(max([FIRST_LOGIN - 1, *numeric]) + 1)


def add_operator(
    session: Session,
    name: str,
    skills: Sequence[Skill],
    *,
    language: str = "ru",
    login: str | None = None,
    tenant_id: int | None = None,
) -> Operator:
    if language not in SUPPORTED_LANGUAGES:
        raise RosterError(f"language must be one of {', '.join(SUPPORTED_LANGUAGES)}")
    login = login or next_login(session)
    if not LOGIN_RE.match(login):
        raise RosterError("SIP login must be 2-32 characters of a-z, 0-9 or _, not starting with _")
    if login in RESERVED_LOGINS:
        raise RosterError(f"SIP login {login!r} is reserved")
    if session.scalar(select(func.count()).where(Operator.sip_login == login)):
        raise RosterError(f"SIP login {login!r} is taken")
    operator = Operator(
        name=clean_name(name),
        sip_login=login,
        # Generated, never a default: it goes into pjsip.conf and the operator's softphone.
        sip_password=secrets.token_urlsafe(16),
        language=language,
        enabled=True,
        tenant_id=tenant_id,
        skills=[OperatorSkill(queue=s.queue, penalty=s.penalty) for s in skills],
    )
    session.add(operator)
    session.flush()
    return operator


def list_operators(session: Session, *, enabled_only: bool = False) -> list[Operator]:
    query = select(Operator).options(selectinload(Operator.skills)).order_by(Operator.sip_login)
    if enabled_only:
        query = query.where(Operator.enabled.is_(True))
    return list(session.scalars(query))


def set_enabled(session: Session, login: str, enabled: bool) -> Operator:
    operator = session.scalar(select(Operator).where(Operator.sip_login == login))
    if operator is None:
        raise RosterError(f"no operator with SIP login {login!r}")
    operator.enabled = enabled
    return operator


def operator_dict(operator: Operator) -> dict[str, object]:
    return {
        "name": operator.name,
        "sip_login": operator.sip_login,
        "sip_password": operator.sip_password,
        "language": operator.language,
        "enabled": operator.enabled,
        "queues": [{"queue": s.queue, "penalty": s.penalty} for s in operator.skills],
        # The tenant (slug) whose specialist this is; None: the centre's staff (added field).
        "tenant": operator.tenant.slug if operator.tenant is not None else None,
    }


def skills_for_tenant(
    session: Session, spec: str, tenant_slug: str | None
) -> tuple[list[Skill], int | None]:
    """Skills for an operator of a tenant (or, None, of the centre), and the tenant's id.

    A tenant's operator names services (`plumbing`) and is put in the tenant's own queue of
    each service it has (`t3_plumbing`), else in the centre's; they may also name the
    centre's coordinator and duty queues, never another tenant's queue. The centre's staff
    may be in any queue."""
    from call_router import tenants
    from call_router.tenant_routing import queue_for, tenant_queue_name

    own = tenants.own_services(session)
    if tenant_slug is None:
        every = [tenant_queue_name(t, svc) for t, svcs in own.items() for svc in sorted(svcs)]
        return parse_skills(spec, (*QUEUES, *every)), None
    tenant = tenants.require_tenant(session, tenant_slug)
    mine = own.get(tenant.id, frozenset())
    known = (*QUEUES, *(tenant_queue_name(tenant.id, svc) for svc in sorted(mine)))
    skills: list[Skill] = []
    for skill in parse_skills(spec, known):
        queue = queue_for(tenant.id, skill.queue, own)
        if any(s.queue == queue for s in skills):
            raise RosterError(f"queue {queue!r} is listed twice")
        skills.append(Skill(queue, skill.penalty))
    return skills, tenant.id
