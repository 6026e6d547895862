"""What a flow file may say: pydantic models, strict (unknown keys are errors, not ignored).

A flow is a graph of named nodes; each node names the next one(s). Pure: no I/O here, so the
models are unit-tested with plain dicts and reused by `hotline flows check` and the server.
Here: the menu's nodes, the flow and its edges; the shared words and the `if` tests are
vocabulary.py, the nodes that reach beyond the menu service_nodes.py, the business calendar
calendar_schema.py.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, field_validator, model_validator

# The flow engine and its actions read these from here.
from call_router.flows.service_nodes import ACTION_OUTCOMES as ACTION_OUTCOMES
from call_router.flows.service_nodes import ActionArgs as ActionArgs
from call_router.flows.service_nodes import (
    ActionNode,
    CompanyNode,
    FlowJumpNode,
    TransferNode,
)
from call_router.flows.vocabulary import (
    LANGUAGES,
    MENU_KEY,
    REPEAT_KEY,
    Branch,
    Language,
    NodeId,
    PromptName,
    Strict,
    VarName,
)

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
