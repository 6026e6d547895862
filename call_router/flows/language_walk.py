"""Which prompt plays in which language on every path of the flows (issue 16). Pure.

A caller's language can change on the way (a `set` of `language`, "press 9 for English") and a
`play` node may be pinned to one language ("For English, press 9" is always said in English).
`walk` follows every edge of a flow, through `flow` jumps into other flows, from each starting
language, and lists every prompt with the language it is played in and a path that plays it.
`problems` then says which of those have no text in that language, or a text in another
script (a Russian sentence filed under `en`), so a test can fail on the exact path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from call_router.flows.schema import (
    Flow,
    FlowJumpNode,
    Node,
    SetNode,
    node_prompts,
    node_targets,
)

# Letters of each language's script; a text must be mostly in its language's own letters.
_SCRIPTS = {
    "ru": re.compile(r"[А-Яа-яЁё]"),
    "en": re.compile(r"[A-Za-z]"),
}
_LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True)
class Played:
    """One prompt a caller can hear: where, in which language, reached how."""

    flow: str
    node: str
    field: str
    prompt: str
    language: str
    path: tuple[str, ...]  # "flow:node" from the start, ending at this node

    def where(self) -> str:
        return f"{' → '.join(self.path)} ({self.field}: {self.language}/{self.prompt})"


def walk(flows: Mapping[str, Flow], start: str, language: str) -> list[Played]:
    """Every (prompt, language) a caller starting `start` in `language` can hear, each once,
    with the first path found to it (depth first over node and current language)."""
    found: dict[tuple[str, str], Played] = {}
    seen: set[tuple[str, str, str]] = set()
    todo: list[tuple[str, str, str, tuple[str, ...]]] = []
    first = flows.get(start)
    if first is not None:
        todo.append((start, first.start, language, ()))
    while todo:
        flow_name, node_id, lang, path = todo.pop()
        flow = flows.get(flow_name)
        if flow is None or node_id not in flow.nodes or (flow_name, node_id, lang) in seen:
            continue
        seen.add((flow_name, node_id, lang))
        node = flow.nodes[node_id]
        here = (*path, f"{flow_name}:{node_id}")
        played_in = getattr(node, "language", None) or lang
        for field, prompt in node_prompts(node):
            found.setdefault(
                (prompt, played_in), Played(flow_name, node_id, field, prompt, played_in, here)
            )
        after = _language_after(node, lang)
        if isinstance(node, FlowJumpNode):
            target = flows.get(node.flow)
            if target is not None:
                todo.append((node.flow, target.start, after, here))
        for _, target_id in node_targets(node):
            todo.append((flow_name, target_id, after, here))
    return sorted(found.values(), key=lambda p: (p.language, p.prompt))


def _language_after(node: Node, language: str) -> str:
    if isinstance(node, SetNode) and "language" in node.vars:
        return node.vars["language"]
    return language


def wrong_script(text: str, language: str) -> bool:
    """Whether `text` is not written in `language`'s letters (unknown languages: never)."""
    script = _SCRIPTS.get(language)
    letters = _LETTER.findall(text)
    if script is None or not letters:
        return False
    own = sum(1 for ch in letters if script.match(ch))
    return own * 2 < len(letters)


def problems(played: list[Played], texts: Mapping[str, Mapping[str, str]]) -> list[str]:
    """What is wrong with each played prompt's text: missing, or in another language."""
    out: list[str] = []
    for item in played:
        text = texts.get(item.prompt, {}).get(item.language)
        if text is None:
            out.append(f"no {item.language!r} text: {item.where()}")
        elif wrong_script(text, item.language):
            out.append(f"text is not in {item.language!r}: {item.where()}: {text[:60]!r}")
    return out
