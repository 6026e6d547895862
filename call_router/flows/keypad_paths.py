"""Every way through a flow by keypad, as a caller would take it (issue 16). Pure.

`language_walk.walk` lists every prompt a flow can play; this module lists the calls that play
them: for a caller starting in a language, by day or at night, each path from the start to
where the menu lets go of the call (a queue, a transfer, a voicemail, a goodbye, or the first
number to key in), with the keys pressed on the way and the prompts heard, in order and in the
language they are played in. A test drives each path through the real Asterisk and compares
what Asterisk played with `heard`.

The path is what a fresh caller meets: a single-company hotline (the company is not asked),
no open incident for their area, no open service request. Conditions are decided as the engine
decides them (`conditions.evaluate`) from the hour and the call's variables. A menu's keys
each start a path of their own; a node met again in the same language (a second "press 9")
ends the walk there. Menu repeats (`*`), wrong keys and silence are not walked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time

from call_router.flows.conditions import ALWAYS_OPEN, BusinessCalendar, CallFacts, evaluate
from call_router.flows.schema import (
    AreaNode,
    AskNode,
    CollectNode,
    CompanyNode,
    ConditionNode,
    Flow,
    FlowJumpNode,
    GotoNode,
    HangupNode,
    IncidentNode,
    MenuNode,
    Node,
    PlayNode,
    RequestsNode,
    RouteNode,
    SetNode,
    TransferNode,
    VoicemailNode,
)

# Closed every day: the night menu.
NEVER_OPEN = BusinessCalendar(tz=UTC, week={})
# Where a caller's path ends: handed to the dialplan, or waiting for digits we do not walk.
_ENDS = (RouteNode, TransferNode, VoicemailNode, HangupNode, CollectNode)


@dataclass(frozen=True)
class Heard:
    """A prompt played to the caller, and the language it is played in."""

    prompt: str
    language: str

    def __str__(self) -> str:
        return f"{self.language}/{self.prompt}"


@dataclass(frozen=True)
class KeyPress:
    """Press `key` while `during` plays (the node asking for it)."""

    key: str
    during: Heard
    heard_before: int  # prompts of the path played before `during`


@dataclass(frozen=True)
class KeypadPath:
    start_language: str
    presses: tuple[KeyPress, ...]
    heard: tuple[Heard, ...]  # in the order played
    end: str  # "flow:node" where the menu lets go of the call
    end_language: str

    @property
    def keys(self) -> str:
        return "".join(p.key for p in self.presses)

    @property
    def last(self) -> Heard | None:
        """The last prompt of the path: once it plays, the path has been walked."""
        return self.heard[-1] if self.heard else None

    def __str__(self) -> str:
        return f"{self.start_language}:{self.keys or '-'}→{self.end}"


def keypad_paths(
    flows: Mapping[str, Flow], start: str, language: str, *, business_hours: bool = True
) -> list[KeypadPath]:
    """Every keypad path through `flows[start]` for a caller starting in `language`."""
    calendar = ALWAYS_OPEN if business_hours else NEVER_OPEN
    first = flows[start]
    out: list[KeypadPath] = []
    todo = [(start, first.start, KeypadPath(language, (), (), "", language), frozenset[str]())]
    while todo:
        flow_name, node_id, path, seen = todo.pop()
        flow = flows[flow_name]
        lang = path.end_language
        place = f"{flow_name}:{node_id}"
        if f"{place}@{lang}" in seen:
            continue  # a loop (the menu again in the same language): walked already
        seen = seen | {f"{place}@{lang}"}
        node = flow.nodes[node_id]
        heard = path.heard + tuple(Heard(p, _language_of(node, lang)) for p in _plays(node))
        path = replace(path, heard=heard, end=place)
        if isinstance(node, _ENDS):
            out.append(path)
            continue
        for target_flow, target, after, press in _next(flows, flow_name, node, path, calendar):
            presses = path.presses + ((press,) if press is not None else ())
            todo.append(
                (target_flow, target, replace(path, presses=presses, end_language=after), seen)
            )
    return sorted(out, key=lambda p: (p.keys, p.end))


def _plays(node: Node) -> list[str]:
    """The prompts a fresh keypad caller hears at `node`, in order (no speech, no retries)."""
    if isinstance(node, AreaNode | IncidentNode | RequestsNode | CompanyNode):
        return []  # nothing to tell a fresh caller, nothing asked
    prompt = getattr(node, "prompt", None)
    return [prompt] if prompt else []


def _language_of(node: Node, language: str) -> str:
    return getattr(node, "language", None) or language


def _next(
    flows: Mapping[str, Flow],
    flow_name: str,
    node: Node,
    path: KeypadPath,
    calendar: BusinessCalendar,
) -> list[tuple[str, str, str, KeyPress | None]]:
    """(flow, node, language after, key pressed) of each way on from `node`, the last node of
    `path`."""
    language = path.end_language
    asked = Heard(getattr(node, "prompt", "") or "", language)
    before = len(path.heard) - 1
    match node:
        case MenuNode():
            return [
                (flow_name, o.next, language, KeyPress(k, asked, before))
                for k, o in node.options.items()
            ]
        case AskNode():
            return [
                (flow_name, c.next, language, KeyPress(c.key, asked, before))
                for c in node.choices.values()
                if c.key
            ]
        case ConditionNode():
            facts = CallFacts(
                now=datetime.combine(datetime.now(UTC).date(), time(12), UTC),
                calendar=calendar,
                variables={"language": language},
            )
            taken = next((b.next for b in node.branches if evaluate(b.when, facts)), None)
            return [(flow_name, taken or node.otherwise, language, None)]
        case SetNode():
            return [(flow_name, node.next, node.vars.get("language", language), None)]
        case FlowJumpNode():
            return [(node.flow, flows[node.flow].start, language, None)]
        case CompanyNode() | PlayNode() | GotoNode() | AreaNode() | IncidentNode() | RequestsNode():
            return [(flow_name, node.next, language, None)]
    raise ValueError(f"{flow_name}: a {node.type} node is not walked by keypad")
