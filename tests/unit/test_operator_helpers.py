"""Pure helpers of the operator page, the callback list and playback (no I/O but tmp files)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from call_router import callback_dialing
from call_router.models import Call, Callback, CallEvent
from call_router.screen_pop import OperatorIdentity, is_operators_call, pick_current, wait_seconds
from dashboard.routes import audio
from dashboard.routes.callback_pages import (
    STAGE_CONNECTED,
    STAGE_ENDED,
    STAGE_OPERATOR_RINGING,
    STAGE_RESIDENT_RINGING,
    call_stage,
    split_lists,
)
from dashboard.routes.operator_pages import acting_operator_login, concerns

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
ANNA = OperatorIdentity(login="op_anna", name="Anna Petrova")


def event(kind: str, **data: object) -> CallEvent:
    return CallEvent(kind=kind, key=kind, at=T0, data=data)


def call(events: list[CallEvent] | None = None, **fields: object) -> Call:
    fields.setdefault("linkedid", "L1")
    fields.setdefault("caller_number", "+74950000000")
    fields.setdefault("started_at", T0)
    row = Call(**fields)
    row.events = events or []
    return row


# --- who is on which call ------------------------------------------------------------------


def test_a_call_is_the_operators_by_roster_name_or_login_confirmed_by_the_phone() -> None:
    assert is_operators_call(call(operator="Anna Petrova"), ANNA)
    assert is_operators_call(call(operator="op_anna"), ANNA)  # click-to-call rows
    assert not is_operators_call(call(operator="Boris"), ANNA)
    # Two operators named alike: the AgentConnect interface tells them apart.
    mine = call(
        operator="Anna Petrova",
        events=[event("agent_connect", interface="PJSIP/op_anna")],
    )
    namesake = call(
        operator="Anna Petrova",
        events=[event("agent_connect", interface="PJSIP/op_anna2")],
    )
    assert is_operators_call(mine, ANNA)
    assert not is_operators_call(namesake, ANNA)


def test_the_current_call_is_the_newest_one_redis_still_knows() -> None:
    newest, older = call(linkedid="new"), call(linkedid="old")
    assert pick_current([newest, older], None) is newest
    assert pick_current([newest, older], {"old"}) is older
    assert pick_current([newest, older], set()) is None


def test_wait_is_the_routers_figure_else_from_queue_join_to_answer() -> None:
    assert wait_seconds(call(wait_seconds=17)) == 17
    joined = call(queue_joined_at=T0, answered_at=T0 + timedelta(seconds=42))
    assert wait_seconds(joined) == 42
    assert wait_seconds(call()) is None


def test_only_events_about_this_operator_or_their_call_wake_the_page() -> None:
    assert concerns({"type": "operator", "login": "op_anna"}, ANNA, None)
    assert concerns({"type": "call_talking", "operator": "Anna Petrova"}, ANNA, None)
    assert concerns({"type": "call_ended", "linkedid": "L9"}, ANNA, "L9")
    assert concerns({"type": "resync"}, ANNA, None)
    assert not concerns({"type": "operator", "login": "op_boris"}, ANNA, "L9")
    assert not concerns({"type": "queue", "queue": "heating"}, ANNA, None)


def test_a_signed_in_operator_is_always_themself_a_supervisor_picks() -> None:
    def request(principal: object) -> SimpleNamespace:
        return SimpleNamespace(state=SimpleNamespace(principal=principal))

    operator = SimpleNamespace(operator_login="op_anna", is_supervisor=False)
    supervisor = SimpleNamespace(operator_login=None, is_supervisor=True)
    assert acting_operator_login(request(operator), "op_boris") == "op_anna"  # type: ignore[arg-type]
    assert acting_operator_login(request(supervisor), " op_boris ") == "op_boris"  # type: ignore[arg-type]
    unlinked = SimpleNamespace(operator_login=None, is_supervisor=False)  # or an operator token
    assert acting_operator_login(request(unlinked), "op_boris") is None  # type: ignore[arg-type]
    assert acting_operator_login(request(None), "") is None  # type: ignore[arg-type]
    assert acting_operator_login(SimpleNamespace(state=SimpleNamespace()), None) is None  # type: ignore[arg-type]


# --- the callback list ----------------------------------------------------------------------


def entry(id_: int, **fields: object) -> Callback:
    return Callback(id=id_, caller_number=f"+7495000000{id_}", status="open", **fields)


def test_lists_split_my_live_claims_from_the_rest_keeping_the_order() -> None:
    rows = [
        entry(1, due_at=T0 - timedelta(minutes=1)),
        entry(2, claimed_by="op_anna", claimed_until=T0 + timedelta(minutes=5)),
        entry(3, claimed_by="op_boris", claimed_until=T0 + timedelta(minutes=5)),
        entry(4, claimed_by="op_anna", claimed_until=T0 - timedelta(seconds=1)),  # lapsed
        entry(5, due_at=T0 + timedelta(minutes=30)),
    ]
    mine, others = split_lists(rows, "op_anna", T0)
    assert [r.entry.id for r in mine] == [2]
    assert [r.entry.id for r in others] == [1, 3, 4, 5]
    flags = {r.entry.id: (r.overdue, r.claimed_by_other) for r in others}
    assert flags == {1: (True, False), 3: (False, True), 4: (False, False), 5: (False, False)}
    # Nobody named: nothing is "mine", every live claim is someone else's.
    assert split_lists(rows, None, T0)[0] == []


def test_click_to_call_progress_follows_the_call_log_events() -> None:
    placed = [event(callback_dialing.EVENT_OUTBOUND, callback_id=1)]
    assert call_stage(placed, ended=False) == STAGE_OPERATOR_RINGING
    dialling = [*placed, event(callback_dialing.EVENT_DIAL_BEGIN)]
    assert call_stage(dialling, ended=False) == STAGE_RESIDENT_RINGING
    talking = [*dialling, event(callback_dialing.EVENT_DIAL_END, status="ANSWER")]
    assert call_stage(talking, ended=False) == STAGE_CONNECTED
    busy = [*dialling, event(callback_dialing.EVENT_DIAL_END, status="BUSY")]
    assert call_stage(busy, ended=False) == STAGE_ENDED
    assert call_stage(placed, ended=True) == STAGE_ENDED


# --- playback ---------------------------------------------------------------------------------


def test_only_paths_inside_the_recordings_folder_are_accepted(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    (root / "calls").mkdir(parents=True)
    assert audio.inside(root, "calls/a.wav") == (root / "calls/a.wav").resolve()
    assert audio.inside(root, root / "calls" / "a.wav") == (root / "calls/a.wav").resolve()
    for bad in ("../x.wav", "/etc/passwd", "calls/../../x.wav", "", ".", "a\x00b"):
        assert audio.inside(root, bad) is None, bad
    (root / "escape").symlink_to(tmp_path)
    assert audio.inside(root, "escape/secret.wav") is None


def test_asterisk_names_without_extension_get_the_file_on_disk(tmp_path: Path) -> None:
    (tmp_path / "msg0003.gsm").write_bytes(b"x")
    assert audio.with_audio_suffix(tmp_path / "msg0003") == tmp_path / "msg0003.gsm"
    assert audio.with_audio_suffix(tmp_path / "msg0004") == tmp_path / "msg0004.wav"
    assert audio.with_audio_suffix(tmp_path / "a.wav") == tmp_path / "a.wav"


def test_a_voicemail_message_belongs_to_the_call_on_its_channel_while_it_was_up() -> None:
    info = audio.parse_message_info(
        ";\n; Message Information file\n;\n[message]\norigmailbox=hotline\n"
        f"callerchan=PJSIP/pstn-0000000a\norigtime={int(T0.timestamp()) + 30}\nduration=4\n"
    )
    assert info["callerchan"] == "PJSIP/pstn-0000000a" and info["duration"] == "4"
    end = T0 + timedelta(minutes=1)
    assert audio.message_matches(info, "PJSIP/pstn-0000000a", T0, end)
    assert not audio.message_matches(info, "PJSIP/pstn-0000000b", T0, end)
    assert not audio.message_matches(info, None, T0, end)
    # The same channel name a day later (Asterisk restarted): another call.
    day = timedelta(days=1)
    assert not audio.message_matches(info, "PJSIP/pstn-0000000a", T0 + day, end + day)
    assert not audio.message_matches({"callerchan": "PJSIP/pstn-0000000a"}, "x", T0, end)
