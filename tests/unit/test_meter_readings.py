"""The meter-reading rules (call_router/meter_readings.py) and voicemail trimming: pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydub import AudioSegment
from pydub.generators import Sine

from agi_scripts.voicemail import trim_voicemail
from call_router.meter_readings import (
    PreviousReading,
    check_reading,
    may_amend,
    meter_kind,
    parse_reading,
)

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
LAST = PreviousReading(1000, T0)


def test_the_first_reading_of_a_meter_is_accepted() -> None:
    verdict = check_reading("00123", "cold_water", None, T0)
    assert (verdict.ok, verdict.value, verdict.last) == (True, 123, None)


@pytest.mark.parametrize(
    ("digits", "problem"),
    [
        ("", "not_digits"),
        ("12a", "not_digits"),
        ("١٢٣", "not_digits"),  # Arabic-Indic digits: isdigit() but not what a keypad sends
        ("*12#", "not_digits"),
        ("1234567890", "too_long"),
    ],
)
def test_what_is_not_a_reading(digits: str, problem: str) -> None:
    assert check_reading(digits, "heat", LAST, T0).problem == problem


def test_leading_zeros_do_not_count_towards_the_length() -> None:
    assert parse_reading("000000000123") == 123


def test_below_the_last_reading_is_refused() -> None:
    verdict = check_reading("999", "cold_water", LAST, T0 + timedelta(days=30))
    assert (verdict.problem, verdict.last) == ("below_last", 1000)
    assert check_reading("1000", "cold_water", LAST, T0 + timedelta(days=1)).ok


@pytest.mark.parametrize(
    ("days", "reading", "ok"),
    [
        (1, 1040, True),  # at least one month's growth is allowed, however soon
        (1, 1041, False),
        (30, 1039, True),
        (61, 1080, True),  # two months: twice the growth
        (61, 1081, False),
    ],
)
def test_plausible_monthly_growth(days: int, reading: int, ok: bool) -> None:
    verdict = check_reading(str(reading), "cold_water", LAST, T0 + timedelta(days=days))
    assert verdict.ok is ok
    if not ok:
        assert verdict.problem == "implausible_growth"
        assert verdict.limit is not None and verdict.limit < reading


def test_limits_per_meter_kind_can_be_overridden() -> None:
    later = T0 + timedelta(days=30)
    assert not check_reading("1020", "heat", LAST, later).ok  # default heat: 10 a month
    assert check_reading("1020", "heat", LAST, later, {"heat": 25}).ok


def test_meter_kinds() -> None:
    assert meter_kind(" Hot_Water ") == "hot_water"
    with pytest.raises(ValueError, match="cold_water, hot_water, heat"):
        meter_kind("gas")


@pytest.mark.parametrize(
    ("by", "source", "caller", "after", "ok"),
    [
        ("+79161234567", "phone", "+79161234567", timedelta(hours=1), True),
        ("+79161234567", "phone", "+79161234567", timedelta(days=4), False),  # too late
        ("+79161234567", "phone", "+79160000000", timedelta(hours=1), False),  # another number
        ("+79161234567", "phone", None, timedelta(hours=1), False),  # anonymous
        ("+79161234567", "cli", "+79161234567", timedelta(hours=1), False),  # not by phone
        ("+79161234567", "phone", "+79161234567", timedelta(hours=-1), False),  # clock skew
    ],
)
def test_who_may_amend_a_reading(
    by: str, source: str, caller: str | None, after: timedelta, ok: bool
) -> None:
    assert may_amend(T0, by, source, caller, T0 + after) is ok


# --- voicemail: silence trimmed, length bounded -------------------------------------------


def _message(path: Path, quiet_ms: int, voice_ms: int) -> None:
    quiet = AudioSegment.silent(duration=quiet_ms, frame_rate=8000)
    voice = Sine(300).to_audio_segment(duration=voice_ms, volume=-10).set_frame_rate(8000)
    (quiet + voice + quiet).set_channels(1).export(path, format="wav")


def test_voicemail_silence_is_trimmed_and_length_bounded(tmp_path: Path) -> None:
    path = tmp_path / "m.wav"
    _message(path, quiet_ms=3000, voice_ms=20_000)
    trimmed = trim_voicemail(path, max_seconds=10)
    audio = AudioSegment.from_file(path)
    assert (audio.frame_rate, audio.channels) == (8000, 1)
    assert trimmed.seconds == pytest.approx(10.0, abs=0.02)
    assert len(audio) == pytest.approx(10_000, abs=20)
    assert not trimmed.silent
    # It starts a quarter second before the voice, not three seconds.
    assert audio[:200].dBFS < -60 and audio[300:500].dBFS > -30


def test_a_silent_voicemail_is_reported_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "m.wav"
    AudioSegment.silent(duration=4000, frame_rate=8000).export(path, format="wav")
    before = path.read_bytes()
    trimmed = trim_voicemail(path, max_seconds=60)
    assert trimmed.silent and trimmed.seconds == pytest.approx(4.0)
    assert path.read_bytes() == before


@pytest.mark.parametrize("reading", ["100.5", "100,5", "1e3", "1234567890"])
def test_a_billing_reading_that_is_not_whole_units_is_refused_with_its_value(reading: str) -> None:
    # A newcomer's review (2026-12-06): "100.5" was refused as "at most 9 digits".
    from call_router.payer_accounts import AccountImportError, parse_csv

    line = f'7001234567,"Lenina 5",cold_water,SN1,"{reading}",2026-11-01\n'
    with pytest.raises(AccountImportError) as refused:
        parse_csv(line.encode())
    assert "whole number of at most 9 digits" in str(refused.value)
    assert repr(reading) in str(refused.value)
