from __future__ import annotations

from pathlib import Path

import pytest

from call_router.db import Database
from call_router.operators import (
    RosterError,
    Skill,
    add_operator,
    clean_name,
    list_operators,
    parse_skills,
    set_enabled,
)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'roster.db'}")
    database.upgrade()
    return database


def test_parse_skills_reads_queues_and_penalties() -> None:
    assert parse_skills("plumbing, coordinator:5") == [
        Skill("plumbing", 0),
        Skill("coordinator", 5),
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "at least one queue"),
        ("general", "unknown queue"),
        ("plumbing:x", "whole number"),
        ("plumbing:500", "0..100"),
        ("lift,lift", "listed twice"),
    ],
)
def test_parse_skills_rejects_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(RosterError, match=message):
        parse_skills(spec)


def test_clean_name_strips_control_characters_but_keeps_cyrillic() -> None:
    assert clean_name("Анна\n;Петрова\x00 ") == "Анна ;Петрова"
    with pytest.raises(RosterError):
        clean_name("\n\t")


def test_operators_get_numbered_logins_and_distinct_generated_passwords(db: Database) -> None:
    with db.session() as session:
        first = add_operator(session, "Anna", parse_skills("plumbing"))
        second = add_operator(session, "Boris", parse_skills("lift,coordinator:3"))
        assert (first.sip_login, second.sip_login) == ("1001", "1002")
        assert first.sip_password != second.sip_password
        assert len(first.sip_password) >= 16
    with db.session() as session:
        roster = list_operators(session)
        assert [op.name for op in roster] == ["Anna", "Boris"]
        assert [(s.queue, s.penalty) for s in roster[1].skills] == [
            ("coordinator", 3),
            ("lift", 0),
        ]


def test_duplicate_and_malformed_logins_are_refused(db: Database) -> None:
    with db.session() as session:
        add_operator(session, "Anna", parse_skills("plumbing"), login="anna")
    with db.session() as session, pytest.raises(RosterError, match="taken"):
        add_operator(session, "Other", parse_skills("plumbing"), login="anna")
    with db.session() as session, pytest.raises(RosterError, match="SIP login"):
        add_operator(session, "Bad", parse_skills("plumbing"), login="a;b\n")


def test_a_language_without_prompts_is_refused(db: Database) -> None:
    # A newcomer's review (2026-12-06): `--language de` was taken although the help says ru or
    # en, and no prompts exist for it.
    with db.session() as session, pytest.raises(RosterError, match="language must be one of"):
        add_operator(session, "Dieter", parse_skills("plumbing"), language="de")
    with db.session() as session:
        emma = add_operator(session, "Emma", parse_skills("plumbing"), language="en")
        assert emma.language == "en"


def test_disabled_operators_leave_the_enabled_roster(db: Database) -> None:
    with db.session() as session:
        add_operator(session, "Anna", parse_skills("plumbing"), login="anna")
        add_operator(session, "Boris", parse_skills("plumbing"), login="boris")
    with db.session() as session:
        set_enabled(session, "anna", False)
    with db.session() as session:
        assert [op.sip_login for op in list_operators(session, enabled_only=True)] == ["boris"]
        with pytest.raises(RosterError, match="no operator"):
            set_enabled(session, "nobody", True)
