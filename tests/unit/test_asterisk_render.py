"""Rendering of asterisk_conf/*.conf.j2: every file renders, nothing can inject config lines."""

from __future__ import annotations

import re
import wave
from pathlib import Path

import pytest

from call_router.asterisk_paths import AsteriskPaths, instance_id
from call_router.settings import AMI_ROLES, QUEUES, Settings
from hotline.asterisk import config_checks, render
from hotline.asterisk.ami_users import AMI_USERS
from hotline.asterisk.render import ConfigError, OperatorConf, render_config
from hotline.asterisk.sandbox import Asterisk
from hotline.asterisk.sandbox_root import debian_mirror

EXPECTED_FILES = {
    "asterisk.conf",
    "modules.conf",
    "logger.conf",
    "manager.conf",
    "pjsip.conf",
    "rtp.conf",
    "extensions.conf",
    "queues.conf",
    "voicemail.conf",
    "musiconhold.conf",
    "cdr.conf",
}
PASSWORD = "pw_Zx8-kQ2mT7vB1nL4"
INSIDE = "/srv/hotline/abc123/asterisk"
PATHS = AsteriskPaths(
    etc=f"{INSIDE}/etc",
    spool=f"{INSIDE}/spool",
    log=f"{INSIDE}/log",
    run=f"{INSIDE}/run",
    lib=f"{INSIDE}/lib",
    recordings="/srv/hotline/abc123/recordings",
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        recordings_dir=tmp_path / "recordings",
        asterisk_root=tmp_path / "root",
        sip_port=16060,
        ami_port=16038,
        agi_port=16573,
        rtp_start=16000,
        rtp_end=16199,
    )


def operator(**overrides: object) -> OperatorConf:
    fields: dict[str, object] = {
        "sip_login": "1001",
        "sip_password": PASSWORD,
        "name": "Анна Петрова",
        "queues": (("plumbing", 0), ("coordinator", 5)),
    }
    fields.update(overrides)
    return OperatorConf(**fields)  # type: ignore[arg-type]


def sections(text: str) -> dict[str, list[tuple[str, str]]]:
    """A small Asterisk config reader: {section: [(key, value), ...]}, comments dropped.

    Repeated section names (pjsip's endpoint/aor/auth share names) are merged in order.
    """
    result: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        header = re.fullmatch(r"\[([^\]]+)\](\(.*\))?", line)
        if header:
            current = result.setdefault(header.group(1), [])
            continue
        assert current is not None, f"option outside a section: {raw!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not an option line: {raw!r}"
        current.append((key.rstrip(">").strip(), value.lstrip(">").strip()))
    return result


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [v for k, v in section if k == key]


def rendered(settings: Settings, operators: list[OperatorConf] | None = None) -> dict[str, str]:
    conf = render_config(settings, PATHS, operators if operators is not None else [operator()])
    return {p.name: p.read_text() for p in conf.parent.glob("*.conf")}


# --- every template renders ---------------------------------------------------------------


def test_every_template_renders_into_etc(settings: Settings) -> None:
    conf = render_config(settings, PATHS, [operator()])
    assert conf == settings.asterisk_dir / "etc" / "asterisk.conf"
    names = {p.name for p in conf.parent.glob("*.conf")}
    templates = {p.name.removesuffix(".j2") for p in render.TEMPLATES_DIR.glob("*.conf.j2")}
    assert names >= EXPECTED_FILES
    assert names == templates
    for name in names:
        text = (conf.parent / name).read_text()
        assert "{{" not in text and "{%" not in text, name
        sections(text)  # parses as an Asterisk config file
    for sub in ("spool", "log", "log/cdr-csv", "run", "lib"):
        assert (settings.asterisk_dir / sub).is_dir()


def test_rendering_with_no_operators_still_gives_every_queue(settings: Settings) -> None:
    queues = sections(rendered(settings, [])["queues.conf"])
    assert set(queues) == {"general", *QUEUES}
    assert all(not values(queues[q], "member") for q in QUEUES)


def test_a_missing_template_variable_is_an_error(settings: Settings) -> None:
    context = render.template_context(settings, PATHS, [], "/srv/moh")
    del context["ami_port"]
    with pytest.raises(Exception, match="ami_port"):
        render.render_templates(context)


def test_stale_rendered_files_are_removed(settings: Settings) -> None:
    etc = settings.asterisk_dir / "etc"
    etc.mkdir(parents=True)
    (etc / "sip.conf").write_text("[general]\n")
    render_config(settings, PATHS, [])
    assert not (etc / "sip.conf").exists()


# --- asterisk.conf, modules.conf -----------------------------------------------------------


def test_asterisk_conf_points_at_this_instances_folders(settings: Settings) -> None:
    conf = sections(rendered(settings)["asterisk.conf"])
    dirs = dict(conf["directories"])
    assert dirs["astetcdir"] == PATHS.etc
    assert dirs["astspooldir"] == PATHS.spool
    assert dirs["astlogdir"] == PATHS.log
    assert dirs["astrundir"] == PATHS.run
    assert dirs["astvarlibdir"] == PATHS.lib
    assert dirs["astdbdir"] == PATHS.lib
    assert dirs["astdatadir"] == "/usr/share/asterisk"
    assert dirs["astmoddir"] == PATHS.modules
    # Control socket in the instance's own run dir: two instances never collide.
    assert dict(conf["files"])["astctl"] == "asterisk.ctl"
    assert dict(conf["options"])["defaultlanguage"] == settings.default_language


def test_modules_conf_loads_only_what_we_use(settings: Settings) -> None:
    conf = sections(rendered(settings)["modules.conf"])["modules"]
    assert values(conf, "autoload") == ["no"]
    loaded = set(values(conf, "load"))
    for module in (
        "chan_pjsip.so",
        "res_pjsip_pubsub.so",
        "res_pjsip_endpoint_identifier_user.so",
        "res_pjsip_endpoint_identifier_ip.so",
        "res_pjsip_registrar.so",
        "app_queue.so",
        "app_voicemail.so",
        "res_agi.so",
        "res_speech.so",
        "app_audiosocket.so",
        "res_audiosocket.so",
        "cdr_csv.so",
        "res_musiconhold.so",
    ):
        assert module in loaded
    assert not {"chan_sip.so", "app_system.so", "func_shell.so", "res_ari.so"} & loaded


def test_logger_writes_a_full_log_and_the_queue_log(settings: Settings) -> None:
    conf = sections(rendered(settings)["logger.conf"])
    general = dict(conf["general"])
    assert general["queue_log"] == "yes" and general["queue_log_name"] == "queue_log"
    logfiles = dict(conf["logfiles"])
    assert "verbose" in logfiles["full"]
    assert logfiles["console"] == "error"
    # Keys pressed are payer codes: no log gets the dtmf level. Rotated files carry the time.
    assert not any("dtmf" in levels for levels in logfiles.values())
    assert general["rotatestrategy"] == "timestamp"


def test_callback_out_dials_only_the_rendered_numbering_plan(settings: Settings) -> None:
    conf = sections(rendered(settings)["extensions.conf"])
    allowed = {v.split(",")[0] for k, v in conf["callback-plan"] if k == "exten"}
    denied = {v.split(",")[0] for k, v in conf["callback-denied"] if k == "exten"}
    assert "_+749[12345689]XXXXXXX" in allowed  # Moscow landlines
    assert any(p.startswith("_+79") for p in allowed)  # mobiles
    assert "_+780[39]XXXXXXX" in denied  # premium rate
    assert not any(p.startswith("_+780") for p in allowed)
    out = [v for k, v in conf["callback-out"] if k in ("exten", "same")]
    plan = next(i for i, v in enumerate(out) if "DIALPLAN_EXISTS(callback-plan" in v)
    dial = next(i for i, v in enumerate(out) if "Dial(PJSIP/" in v)
    assert plan < dial
    wider = Settings(**{**settings.model_dump(), "dial_out_denied_prefixes": ["+7958"]})
    conf = sections(rendered(wider)["extensions.conf"])
    assert "_+7958.,1,Hangup(28)" in [v for k, v in conf["callback-denied"] if k == "exten"]


# --- AMI, SIP, RTP ---------------------------------------------------------------------------


def test_manager_conf_has_the_generated_secret_and_local_permits(settings: Settings) -> None:
    conf = sections(rendered(settings)["manager.conf"])
    general = dict(conf["general"])
    assert general["enabled"] == "yes"
    assert (general["bindaddr"], general["port"]) == ("127.0.0.1", "16038")
    assert general["displayconnects"] == "no"
    user = conf[settings.ami_username]
    assert values(user, "secret") == [settings.ami_secret]
    assert len(settings.ami_secret) >= 16
    assert values(user, "deny") == ["0.0.0.0/0.0.0.0"]
    assert values(user, "permit") == ["127.0.0.1/255.255.255.255"]


def test_each_ami_user_gets_only_the_classes_its_process_uses(settings: Settings) -> None:
    conf = sections(rendered(settings)["manager.conf"])
    granted = {}
    for role in AMI_ROLES:
        name, secret = settings.ami_login(role)
        user = conf[name]
        assert values(user, "secret") == [secret]
        assert values(user, "permit") == ["127.0.0.1/255.255.255.255"]
        granted[role] = {
            perm: set(filter(None, values(user, perm)[0].split(","))) for perm in ("read", "write")
        }
        # Nobody may load modules or run a shell (System(), Command).
        assert not {"system", "command", "config", "all"} & granted[role]["write"]
    assert len({settings.ami_login(r)[1] for r in AMI_ROLES}) == 4
    assert granted["router"]["write"] == {"agent", "reporting", "user"}
    assert granted["originate"]["write"] == {"originate", "reporting"}
    assert granted["control"] == {"read": set(), "write": {"agent"}}
    # Call control: hang up, redirect, originate to ChanSpy, pauses; reads only call events
    # (the manager.conf filter lets nothing but OriginateResponse through).
    assert granted["supervise"] == {
        "read": {"call", "dtmf"},
        "write": {"agent", "call", "originate", "reporting"},
    }
    assert [name for name in conf if name != "general"] == [
        settings.ami_login(r)[0] for r in AMI_ROLES
    ]


def test_manager_conf_sends_the_ami_user_only_the_events_the_hotline_reads(
    settings: Settings,
) -> None:
    from call_router.ami_listener import AmiListener
    from call_router.call_log import CallLog
    from call_router.db import Database
    from call_router.live_state import LiveState

    user = sections(rendered(settings)["manager.conf"])[settings.ami_username]
    filters = {k.removeprefix("eventfilter"): v for k, v in user if k.startswith("eventfilter")}
    names = set(re.findall(r"name\(([A-Za-z]+)\)", " ".join(filters)))
    db = Database("sqlite://")
    listener = AmiListener(settings, CallLog(db), LiveState.from_url("redis://127.0.0.1:1/0", "x"))
    # Every event the router subscribes to, plus click-to-call's OriginateResponse.
    assert set(listener.events.handlers) | {"OriginateResponse"} <= names
    assert "(action(include),name(VarSet),header(Variable),method(regex))" in filters
    varset = re.compile(filters["(action(include),name(VarSet),header(Variable),method(regex))"])
    assert [v for v in ("QUEUESTATUS", "VMSTATUS", "HOTLINE_QUEUE") if varset.search(v)] == [
        "QUEUESTATUS",
        "VMSTATUS",
        "HOTLINE_QUEUE",
    ]
    assert not varset.search("QUEUESTATUS_OLD") and not varset.search("CHANNEL")
    assert "RTCPSent" not in names and "Newstate" not in names
    db.dispose()

    unfiltered = Settings(**{**settings.model_dump(), "ami_event_filter": False})
    user = sections(rendered(unfiltered)["manager.conf"])[settings.ami_username]
    # Only the injection filters (a security filter, not an optimisation).
    assert [k for k, _v in user if k.startswith("eventfilter(action(include)")] == []


INJECTED_BLANK_LINE = "(action(exclude),method(regex))"


@pytest.mark.parametrize("event_filter", [True, False])
def test_every_ami_user_that_reads_events_drops_an_event_with_an_injected_line(
    settings: Settings, event_filter: bool
) -> None:
    """A stranger's SIP name or a caller's number with "%0D%0A%0D%0AEvent: ..." split a
    genuine event in two (tests/integration/test_ami_injection_e2e.py): every reading user
    excludes such events, after its includes (Asterisk applies excludes to what the includes
    let through), also with the event filter off."""
    configured = Settings(**{**settings.model_dump(), "ami_event_filter": event_filter})
    conf = sections(rendered(configured)["manager.conf"])
    for role, classes in AMI_USERS.items():
        user = conf[configured.ami_login(role)[0]]
        filters = [
            (k.removeprefix("eventfilter"), v) for k, v in user if k.startswith("eventfilter")
        ]
        if not classes.read:
            assert filters == [], role
            continue
        excludes = [(k, v) for k, v in filters if k == INJECTED_BLANK_LINE]
        assert len(excludes) == 2 and filters[-2:] == excludes, role
        # POSIX [:cntrl:] in Asterisk's C.UTF-8 locale: C0, DEL and C1 (Cyrillic is not).
        patterns = [
            re.compile(v.replace("[:cntrl:]", "\\x00-\\x1f\\x7f-\\x9f")) for _k, v in excludes
        ]

        def dropped(text: str, patterns: list[re.Pattern[str]] = patterns) -> bool:
            return any(p.search(text) for p in patterns)

        genuine = "Event: Newchannel\r\nCallerIDNum: +74951234567\r\nUniqueid: 1.2\r\n\r\n"
        assert not dropped(genuine), role
        cyrillic = "Event: Newchannel\r\nCallerIDName: Ольга Петровна\r\nExten: \r\n\r\n"
        assert not dropped(cyrillic), role
        userevent = "Event: UserEvent\r\nUserEvent: HotlineLag\r\nProbe: 1\r\n\r\n"
        assert not dropped(userevent), role
        forged = "Event: InvalidAccountID\r\nAccountID: \r\n\r\nEvent: Forged\r\nX: y\r\n\r\n"
        assert dropped(forged), role
        assert dropped(forged.replace("\r\n\r\nEvent", "\n\nEvent")), role
        second_event = "Event: Newchannel\r\nCallerIDNum: 1\r\nEvent: Forged\r\n\r\n"
        assert dropped(second_event), role


def test_the_supervise_user_gets_originate_responses_and_only_the_spy_sessions_digits(
    settings: Settings,
) -> None:
    user = sections(rendered(settings)["manager.conf"])[settings.ami_login("supervise")[0]]
    filters = {k.removeprefix("eventfilter"): v for k, v in user if k.startswith("eventfilter")}
    assert filters == {
        "(action(include),name(OriginateResponse))": "",
        "(action(include),name(DTMFEnd),header(Context),method(exact))": "hotline-spy",
        # Two injection filters under one key (the dict keeps the last).
        INJECTED_BLANK_LINE: "[[:cntrl:]]Event:",
    }


def test_pjsip_conf_trunk_and_operators(settings: Settings) -> None:
    conf = sections(rendered(settings)["pjsip.conf"])
    assert values(conf["global"], "endpoint_identifier_order") == ["username,ip"]
    assert values(conf["transport-udp"], "bind") == ["127.0.0.1:16060"]
    pstn = dict(conf["pstn"])  # endpoint + aor share the name
    assert pstn["context"] == "from-pstn"
    assert pstn["dtmf_mode"] == "rfc4733"
    assert pstn["direct_media"] == "no"
    assert values(conf["pstn"], "contact") == [f"sip:{settings.pstn_host}:{settings.pstn_port}"]
    assert dict(conf["pstn-identify"])["match"] == "127.0.0.1/32"
    op = conf["1001"]
    assert values(op, "context") == ["operators"]
    assert values(op, "max_contacts") == ["1"]
    assert values(op, "remove_existing") == ["yes"]
    assert values(op, "callerid") == ['"Анна Петрова" <1001>']
    assert dict(conf["1001-auth"])["password"] == PASSWORD
    assert dict(conf["1001-auth"])["username"] == "1001"


def test_rtp_range_comes_from_settings(settings: Settings) -> None:
    conf = dict(sections(rendered(settings)["rtp.conf"])["general"])
    assert (conf["rtpstart"], conf["rtpend"]) == ("16000", "16199")


def test_secrets_appear_only_in_manager_and_pjsip(settings: Settings) -> None:
    files = rendered(settings)
    holders = {name for name, text in files.items() if settings.ami_secret in text}
    assert holders == {"manager.conf"}
    holders = {name for name, text in files.items() if PASSWORD in text}
    assert holders == {"pjsip.conf"}
    etc = settings.asterisk_dir / "etc"
    assert (etc / "manager.conf").stat().st_mode & 0o077 == 0
    assert (etc / "pjsip.conf").stat().st_mode & 0o077 == 0


# --- dialplan -------------------------------------------------------------------------------


def extensions(text: str, context: str) -> dict[str, list[str]]:
    """{extension: [priority lines]} of one context."""
    result: dict[str, list[str]] = {}
    current = None
    for key, value in sections(text)[context]:
        if key == "exten":
            current, _, rest = value.partition(",")
            result.setdefault(current, []).append(rest)
        elif key == "same":
            assert current is not None
            result[current].append(value)
    return result


def test_from_pstn_reaches_only_the_hotline_number(settings: Settings) -> None:
    text = rendered(settings)["extensions.conf"]
    exts = extensions(text, "from-pstn")
    assert exts[settings.hotline_number][-1] == "n,Goto(hotline-ivr,s,1)"
    patterns = [e for e in exts if e.startswith("_")]
    assert patterns == ["_[+*#0-9]!"]
    assert exts["_[+*#0-9]!"][-1] == "n,Hangup(1)"
    assert {"s", "i", "h"} <= set(exts)
    goto_targets = {
        line.split("Goto(", 1)[1] for lines in exts.values() for line in lines if "Goto(" in line
    }
    assert goto_targets == {"hotline-ivr,s,1)"}


def test_ivr_runs_the_fastagi_script_and_fails_safe_to_the_coordinator(settings: Settings) -> None:
    text = rendered(settings)["extensions.conf"]
    ivr = extensions(text, "hotline-ivr")["s"]
    assert f"n,Set(CHANNEL(language)={settings.default_language})" in ivr
    # The flow follows the number dialled; anything else (operators testing) gets `hotline`.
    assert 'n,ExecIf($["${HOTLINE_FLOW}" != "meters"]?Set(HOTLINE_FLOW=hotline))' in ivr
    # The linkedid and recordings folder go along as arguments (no GET VARIABLE for them).
    line = "n,AGI(agi://127.0.0.1:16573/${HOTLINE_FLOW},${CHANNEL(linkedid)},${HOTLINE_RECORDINGS})"
    assert line in ivr
    agi = ivr.index(line)
    after = ivr[agi + 1 :]
    assert after[0] == 'n,GotoIf($["${AGISTATUS}" = "HANGUP"]?done)'
    assert after[1] == 'n,GotoIf($["${AGISTATUS}" != "SUCCESS"]?agi-fail,s,1)'
    for queue in QUEUES:
        assert f'n,GotoIf($["${{HOTLINE_QUEUE}}" = "{queue}"]?hotline-queues,{queue},1)' in after
    assert "n,Goto(agi-fail,s,1)" in after
    fail = extensions(text, "agi-fail")["s"]
    assert "n,Set(HOTLINE_FALLBACK=agi)" in fail
    assert "n,Set(HOTLINE_QUEUE=coordinator)" in fail
    # The call log learns why: live (user event) and, for a router that is away, queue_log.
    # Both name the number dialled (from-pstn sets it from the extension it matched).
    assert (
        "n,UserEvent(HotlineAgiFailed,Queue: coordinator,Status: ${AGISTATUS},"
        "Dialed: ${HOTLINE_DIALED})"
    ) in fail
    assert (
        "n,QueueLog(coordinator,${CHANNEL(linkedid)},NONE,HOTLINEAGIFAILED,"
        "${AGISTATUS}|${HOTLINE_DIALED})"
    ) in fail
    assert fail[-1] == "n,Goto(hotline-queues,coordinator,1)"
    assert "HOTLINE_RECORDINGS = /srv/hotline/abc123/recordings" in text


def test_a_fastagi_pool_is_tried_in_turn_while_a_server_ran_nothing(settings: Settings) -> None:
    pool = ["127.0.0.2:16573", "127.0.1.2:16573"]
    text = rendered(settings.model_copy(update={"agi_pool": pool}))["extensions.conf"]
    args = "${HOTLINE_FLOW},${CHANNEL(linkedid)},${HOTLINE_RECORDINGS}"
    for context, route in (("hotline-ivr", args), ("request-feedback", "request_feedback,")):
        lines = extensions(text, context)["s"]
        first = next(i for i, line in enumerate(lines) if line.startswith("n,AGI("))
        assert lines[first - 1] == "n,Set(HOTLINE_AGI_STATE=${CHANNEL(state)})"
        assert lines[first].startswith(f"n,AGI(agi://{pool[0]}/{route}")
        # The server ran nothing (the channel state did not move: no ANSWER): the next one;
        # on a channel already up, only after a FAILURE (e.g. a refused connection).
        assert lines[first + 1] == (
            'n,GotoIf($["${AGISTATUS}" = "HANGUP" | "${CHANNEL(state)}" != '
            '"${HOTLINE_AGI_STATE}" | ("${HOTLINE_AGI_STATE}" = "Up" & "${AGISTATUS}" != '
            '"FAILURE")]?agi_done)'
        )
        assert lines[first + 3].startswith(f"n,AGI(agi://{pool[1]}/{route}")
        assert lines[first + 4] == "n(agi_done),NoOp(FastAGI: ${AGISTATUS})"
    # The IVR's fail-safe still follows the last try.
    ivr = extensions(text, "hotline-ivr")["s"]
    done = ivr.index("n(agi_done),NoOp(FastAGI: ${AGISTATUS})")
    assert ivr[done + 1] == 'n,GotoIf($["${AGISTATUS}" = "HANGUP"]?done)'


def test_queue_extensions_are_explicit_with_a_timeout(settings: Settings) -> None:
    text = rendered(settings)["extensions.conf"]
    exts = extensions(text, "hotline-queues")
    assert set(exts) == {*QUEUES, "i", "h"}
    for queue in QUEUES:
        timeout = settings.coordinator_timeout if queue == "coordinator" else settings.queue_timeout
        assert f"n,Queue({queue},t,,,{timeout})" in exts[queue]
        assert exts[queue][-1] == "n,Goto(hotline-queue-exit,s,1)"
    exit_lines = extensions(text, "hotline-queue-exit")["s"]
    for status in (
        "TIMEOUT",
        "FULL",
        "JOINEMPTY",
        "LEAVEEMPTY",
        "JOINUNAVAIL",
        "LEAVEUNAVAIL",
        "CONTINUE",
    ):
        assert any(f'"{status}"' in line for line in exit_lines), status
    assert "n(voicemail),VoiceMail(hotline@hotline,u)" in exit_lines
    assert exit_lines[-1] == "n(done),Hangup()"


# What a caller ID may keep: no "|" (the queue_log's field separator) and no control character
# ("\n" ends a queue_log line and a CDR record). res_pjsip takes the number from the From user
# part URI-unescaped ("%0A" is a newline) and app_queue/cdr_csv write it raw: one call's number
# could otherwise forge whole queue_log lines and CDR records for other calls (reconcile.py).
CALLER_ID_FILTER = "Set(CALLERID(num)=${FILTER(+*#0-9A-Za-z,${CALLERID(num)})})"


@pytest.mark.parametrize("node", [False, True])
def test_a_callers_number_is_filtered_before_anything_records_it(
    settings: Settings, node: bool
) -> None:
    """Every way in from the trunk (and the cluster's edge) first strips the caller's number
    to characters that cannot forge a line in the queue_log or the CDR CSV."""
    configured = settings.model_copy(update={"meters_number": "500106"})
    if node:
        configured = configured.model_copy(update={"node": "node2"})
    # A company's registered number too (`hotline numbers add`).
    conf = render_config(configured, PATHS, [operator()], dialled_numbers=["500200"])
    text = (conf.parent / "extensions.conf").read_text()
    contexts = ["from-pstn", "from-edge"] if node else ["from-pstn"]
    seen = set()
    for context in contexts:
        for exten, lines in extensions(text, context).items():
            if exten in {"i", "h"}:
                continue
            seen.add(exten)
            assert lines[0] == "1," + CALLER_ID_FILTER, (context, exten, lines)
    assert {configured.hotline_number, "500106", "500200", "s"} <= seen
    menu = extensions(text, "from-pstn")["500200"]
    assert menu[2:] == [
        "n,Set(HOTLINE_DIALED=${EXTEN})",
        "n,Set(HOTLINE_FLOW=hotline)",
        "n,Goto(hotline-ivr,s,1)",
    ]


def test_the_direct_meter_readings_number_runs_the_meters_flow(settings: Settings) -> None:
    without = settings.model_copy(update={"meters_number": None})
    assert "meters" not in str(extensions(rendered(without)["extensions.conf"], "from-pstn"))
    with_meters = settings.model_copy(update={"meters_number": "500106"})
    exts = extensions(rendered(with_meters)["extensions.conf"], "from-pstn")
    assert exts["500106"][2:] == [
        "n,Set(HOTLINE_DIALED=${EXTEN})",
        "n,Set(HOTLINE_FLOW=meters)",
        "n,Goto(hotline-ivr,s,1)",
    ]
    assert exts[settings.hotline_number][2:4] == [
        "n,Set(HOTLINE_DIALED=${EXTEN})",
        "n,Set(HOTLINE_FLOW=hotline)",
    ]
    for bad in ("500;106", settings.hotline_number):
        with pytest.raises(ConfigError, match="meters_number"):
            rendered(settings.model_copy(update={"meters_number": bad}))


def test_operators_dial_each_other_and_the_hotline_only(settings: Settings) -> None:
    ops = [operator(), operator(sip_login="anna", name="Anna")]
    exts = extensions(rendered(settings, ops)["extensions.conf"], "operators")
    assert set(exts) == {settings.hotline_number, "1001", "anna", "i", "h"}
    assert exts["anna"][0] == "1,Dial(PJSIP/anna,30)"
    # A test call into the menu is announced to the router, which logs it as internal.
    assert exts[settings.hotline_number] == [
        "1,UserEvent(HotlineInternalCall)", "n,Goto(hotline-ivr,s,1)"
    ]  # fmt: skip


def test_no_context_has_a_catch_all_pattern(settings: Settings) -> None:
    text = rendered(settings)["extensions.conf"]
    for line in text.splitlines():
        assert not re.match(r"\s*exten\s*=\s*_\.", line), line
        assert not re.match(r"\s*exten\s*=\s*_X\.", line), line


# --- queues, voicemail, music on hold, CDR ----------------------------------------------------


def test_queues_conf_has_no_general_queue_and_members_from_the_roster(settings: Settings) -> None:
    conf = sections(rendered(settings)["queues.conf"])
    assert set(conf) == {"general", *QUEUES}
    general = dict(conf["general"])
    assert general["persistentmembers"] == "no"
    assert not values(conf["general"], "member")
    for queue in QUEUES:
        options = dict(conf[queue])
        assert options["ringinuse"] == "no"
        assert options["timeout"] == "15"
        assert options["setinterfacevar"] == "yes"
        assert options["musicclass"] == "default"
        assert "unavailable" in options["joinempty"]
    assert dict(conf["coordinator"])["strategy"] == "ringall"
    assert dict(conf["plumbing"])["strategy"] == "rrmemory"
    # Members are dynamic (QueueAdd by call_router/agents.py), never static lines.
    assert all(not values(conf[q], "member") for q in QUEUES)
    for queue in QUEUES:
        options = dict(conf[queue])
        assert options["context"] == "hotline-vhold"
        assert options["wrapuptime"] == str(settings.wrapup_seconds)


def test_a_queue_named_general_is_refused(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    monkeypatch.setattr(config_checks, "QUEUES", (*QUEUES, "general"))
    with pytest.raises(ConfigError, match="general"):
        render_config(settings, PATHS, [])


def test_voicemail_has_the_hotline_mailbox_and_lands_in_recordings(settings: Settings) -> None:
    conf = sections(rendered(settings)["voicemail.conf"])
    general = dict(conf["general"])
    assert (general["format"], general["maxsecs"], general["minsecs"]) == ("wav", "120", "1")
    assert general["attach"] == "no"
    box = dict(conf["hotline"])["hotline"].split(",")
    assert box[0].isdigit() and len(box[0]) == 8 and len(box) == 2  # PIN, name; no e-mail
    link = settings.asterisk_dir / "spool" / "voicemail"
    assert link.is_symlink()
    assert str(link.readlink()) == f"{PATHS.recordings}/voicemail"
    assert (settings.recordings_dir / "voicemail").is_dir()
    render_config(settings, PATHS, [])  # re-rendering keeps the link
    assert link.is_symlink()


def test_music_on_hold_falls_back_to_a_generated_tone(settings: Settings) -> None:
    conf = dict(sections(rendered(settings)["musiconhold.conf"])["default"])
    assert conf["mode"] == "files"
    assert conf["directory"] == f"{PATHS.lib}/moh"
    with wave.open(str(settings.asterisk_dir / "lib" / "moh" / "hotline-hold.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert w.getnframes() > 8000 * 5


def test_music_on_hold_uses_recordings_moh_when_it_has_music(settings: Settings) -> None:
    moh = settings.recordings_dir / "moh"
    moh.mkdir(parents=True)
    (moh / "track.wav").write_bytes(b"RIFF")
    conf = dict(sections(rendered(settings)["musiconhold.conf"])["default"])
    assert conf["directory"] == f"{PATHS.recordings}/moh"


def test_cdr_csv_is_enabled(settings: Settings) -> None:
    conf = sections(rendered(settings)["cdr.conf"])
    assert dict(conf["general"])["enable"] == "yes"
    assert dict(conf["csv"])["usegmtime"] == "yes"


# --- nothing can inject config lines ---------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "Анна;Петрова",
        "Eve\n[evil]\ntype = endpoint",
        'Mallory" <666>\r\nmember => PJSIP/x',
        "Bob, 0, PJSIP/x",
        "\x00\x07",
    ],
)
def test_operator_names_cannot_inject_config(settings: Settings, name: str) -> None:
    files = rendered(settings, [operator(name=name)])
    clean = rendered(settings, [operator(name="Clean Name")])
    for file_name, text in files.items():
        assert "[evil]" not in text
        assert "<666>" not in text
        # Same lines, same sections, same options as with a harmless name.
        assert len(text.splitlines()) == len(clean[file_name].splitlines()), file_name
        got, want = sections(text), sections(clean[file_name])
        assert set(got) == set(want), file_name
        assert all([k for k, _ in got[s]] == [k for k, _ in want[s]] for s in got), file_name
    (callerid,) = values(sections(files["pjsip.conf"])["1001"], "callerid")
    assert re.fullmatch(r'"[^";\n]+" <1001>', callerid)


@pytest.mark.parametrize(
    "login", ["a;b", "Anna", "_12", "x\ny", "pstn", "global", "h", "s", "500100", "a" * 41, ""]
)
def test_bad_or_reserved_logins_are_refused(settings: Settings, login: str) -> None:
    with pytest.raises(ConfigError):
        render_config(settings, PATHS, [operator(sip_login=login)])


@pytest.mark.parametrize(
    "password", ["short", "has;semicolon1", "new\nline[evil]", 'quote"1234567', "sp ace12345"]
)
def test_bad_passwords_are_refused_without_echoing_them(settings: Settings, password: str) -> None:
    with pytest.raises(ConfigError) as err:
        render_config(settings, PATHS, [operator(sip_password=password)])
    assert password not in str(err.value)


def test_unknown_queue_and_bad_penalty_are_refused(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="unknown queue"):
        render_config(settings, PATHS, [operator(queues=(("general", 0),))])
    with pytest.raises(ConfigError, match="penalty"):
        render_config(settings, PATHS, [operator(queues=(("lift", -1),))])


def test_duplicate_logins_are_refused(settings: Settings) -> None:
    with pytest.raises(ConfigError, match="twice"):
        render_config(settings, PATHS, [operator(), operator()])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hotline_number", "500;100"),
        ("hotline_number", "_X."),
        ("sip_host", "0.0.0.0\n[x]"),
        ("sip_host", "example.org"),
        ("agi_host", "host;evil"),
        ("pstn_host", "a b"),
        ("ami_username", "admin\n[x]"),
    ],
)
def test_bad_settings_are_refused(settings: Settings, field: str, value: str) -> None:
    with pytest.raises(ConfigError):
        render_config(settings.model_copy(update={field: value}), PATHS, [])


def test_a_path_with_config_syntax_is_refused(settings: Settings) -> None:
    bad = AsteriskPaths(**{**PATHS.__dict__, "recordings": "/srv/rec;x"})
    with pytest.raises(ConfigError):
        render_config(settings, bad, [])


def test_the_jinja_guard_catches_any_value_with_a_newline(settings: Settings) -> None:
    context = render.template_context(settings, PATHS, [], "/srv/moh")
    context["hotline_number"] = "1\n[evil]"
    with pytest.raises(ConfigError, match="refusing to render"):
        render.render_templates(context)


def test_pstn_match_accepts_an_address_or_a_network(settings: Settings) -> None:
    custom = settings.model_copy(update={"pstn_match": "10.1.2.0/24"})
    conf = sections(rendered(custom)["pjsip.conf"])
    assert dict(conf["pstn-identify"])["match"] == "10.1.2.0/24"


def test_the_trunk_is_found_by_address_only_and_operators_by_name_only(
    settings: Settings,
) -> None:
    custom = settings.model_copy(update={"pstn_match": "10.1.2.0/24, 192.0.2.7"})
    conf = sections(rendered(custom)["pjsip.conf"])
    pstn = conf["pstn"]
    assert values(pstn, "identify_by") == ["ip"]
    assert values(pstn, "auth") == []
    # Deny everybody, then permit the carrier: the last matching rule wins in Asterisk ACLs.
    assert values(pstn, "deny") == ["0.0.0.0/0.0.0.0", "::/0"]
    assert values(pstn, "permit") == ["10.1.2.0/24", "192.0.2.7/32"]
    assert dict(conf["pstn-identify"])["match"] == "10.1.2.0/24,192.0.2.7/32"
    assert values(conf["1001"], "identify_by") == ["username"]
    assert values(conf["1001"], "deny") == []


def test_banned_addresses_are_denied_on_operator_endpoints_but_never_a_carrier(
    settings: Settings,
) -> None:
    conf = render_config(
        settings, PATHS, [operator()], banned=["203.0.113.9", "127.0.0.1", "2001:db8::5"]
    )
    pjsip = sections(conf.with_name("pjsip.conf").read_text())
    assert values(pjsip["1001"], "deny") == ["203.0.113.9/32", "2001:db8::5/128"]
    assert "203.0.113.9/32" not in values(pjsip["pstn"], "deny")
    with pytest.raises(ConfigError, match="banned address"):
        render_config(settings, PATHS, [operator()], banned=["1.2.3.4\n[evil]"])


# --- sandbox helpers that need no Asterisk -----------------------------------------------------


def test_debian_mirror_reads_deb822_and_one_line_sources(tmp_path: Path) -> None:
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "debian.sources").write_text(
        "Types: deb\n# comment\nURIs: http://mirror.invalid/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.invalid/debian/\nSuites: bookworm bookworm-updates\n"
    )
    assert debian_mirror(d, tmp_path / "none") == "http://mirror.invalid/debian"
    legacy = tmp_path / "sources.list"
    legacy.write_text(
        "# deb http://old.invalid/debian bookworm main\n"
        "deb http://sec.invalid/debian-security bookworm-security main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://one.invalid/debian bookworm main\n"
    )
    assert debian_mirror(tmp_path / "missing", legacy) == "http://one.invalid/debian"
    assert debian_mirror(tmp_path / "missing", tmp_path / "none") is None


def test_sandbox_paths_and_view_map_host_paths_inside_the_root(settings: Settings) -> None:
    sandbox = Asterisk(settings.model_copy(update={"asterisk_mode": "sandbox"}))
    inside = f"/srv/hotline/{instance_id(settings)}"
    assert sandbox.mode == "sandbox"
    assert sandbox.paths.etc == f"{inside}/asterisk/etc"
    assert sandbox.paths.recordings == f"{inside}/recordings"
    assert (
        sandbox.view(settings.asterisk_dir / "tests" / "x.wav") == f"{inside}/asterisk/tests/x.wav"
    )
    assert sandbox.view(settings.recordings_dir / "prompts") == f"{inside}/recordings/prompts"
    assert sandbox.view(settings.recordings_dir) == f"{inside}/recordings"
    with pytest.raises(ValueError):
        sandbox.view(Path("/etc/passwd"))


def test_system_mode_uses_host_paths(settings: Settings) -> None:
    system = Asterisk(settings.model_copy(update={"asterisk_mode": "system"}))
    assert system.mode == "system"
    assert system.paths.etc == str(settings.asterisk_dir.resolve() / "etc")
    assert system.view(settings.recordings_dir / "a.wav") == str(
        settings.recordings_dir.resolve() / "a.wav"
    )


def test_instances_differ_by_state_dir(tmp_path: Path) -> None:
    a = Settings(state_dir=tmp_path / "a")
    b = Settings(state_dir=tmp_path / "b")
    assert instance_id(a) != instance_id(b)
    assert instance_id(a) == instance_id(Settings(state_dir=tmp_path / "a" / ".." / "a"))


def test_a_cluster_node_takes_the_carrier_only_as_vouched_for_by_the_edge(
    settings: Settings,
) -> None:
    """Behind Kamailio every request comes from the trunk's address: a node sends the trunk's
    calls through [from-edge], which wants Kamailio's header; a single box is unchanged."""
    render_config(settings, PATHS, [operator()])
    single = {
        name: (settings.asterisk_dir / "etc" / name).read_text()
        for name in ("extensions.conf", "pjsip.conf", "asterisk.conf")
    }
    assert "[from-edge]" not in single["extensions.conf"]
    assert ("context", "from-pstn") in sections(single["pjsip.conf"])["pstn"]
    assert "systemname" not in single["asterisk.conf"]

    node = settings.model_copy(update={"node": "node2"})
    render_config(node, PATHS, [operator()])
    etc = node.asterisk_dir / "etc"
    pjsip = sections((etc / "pjsip.conf").read_text())
    assert ("context", "from-edge") in pjsip["pstn"]
    assert ("support_path", "yes") in pjsip["1001"]
    assert ("rewrite_contact", "no") in pjsip["1001"]
    extensions = (etc / "extensions.conf").read_text()
    edge = sections(extensions)["from-edge"]
    secret = node.secrets["edge_secret"]
    vouched = 'X-Hotline-Edge)}" = "' + secret + '"]?from-pstn'
    assert any(vouched in value for _key, value in edge)
    modules = sections((etc / "modules.conf").read_text())["modules"]
    assert ("load", "res_pjsip_header_funcs.so") in modules
    assert ("load", "res_pjsip_path.so") in modules
    assert ("systemname", "node2") in sections((etc / "asterisk.conf").read_text())["options"]
