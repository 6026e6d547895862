"""What the flow schema cannot see, checked across a flow: every target exists, queues and
prompts are known (texts or recordings), every node is reachable, no loop waits for nobody."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from call_router.flows.flow_reader import (
    NOT_BUILT,
    PROMPTS_FILE,
    FlowError,
    PromptCatalogue,
    sound_files,
)
from call_router.flows.schema import (
    INPUT_TYPES,
    Flow,
    FlowJumpNode,
    RouteNode,
    VoicemailNode,
    node_prompts,
    node_targets,
)


def check_graph(
    file: str,
    flow: Flow,
    *,
    queues: Iterable[str],
    catalogue: PromptCatalogue,
    recordings: Path | None = None,
    flow_names: Iterable[str] | None = None,
) -> list[FlowError]:
    """What the schema cannot see: references, reachability, queues, prompts, input-less loops."""
    errors: list[FlowError] = []
    nodes = flow.nodes
    known_queues = set(queues)
    reported: set[tuple[str, str]] = set()
    if flow.start not in nodes:
        errors.append(FlowError(file, "start", f"unknown node {flow.start!r}"))
    for node_id, node in nodes.items():
        for path, target in node_targets(node):
            if target not in nodes:
                errors.append(
                    FlowError(file, f"nodes.{node_id}.{path}", f"unknown node {target!r}")
                )
        if isinstance(node, FlowJumpNode) and flow_names is not None:
            names = set(flow_names)
            if node.flow not in names:
                errors.append(
                    FlowError(
                        file,
                        f"nodes.{node_id}.flow",
                        f"unknown flow {node.flow!r}; flows: {', '.join(sorted(names))}",
                    )
                )
        queue = getattr(node, "queue", None)
        if isinstance(node, RouteNode | VoicemailNode) and queue and queue not in known_queues:
            errors.append(
                FlowError(
                    file,
                    f"nodes.{node_id}.queue",
                    f"unknown queue {queue!r}; queues: {', '.join(sorted(known_queues))}",
                )
            )
        for path, prompt in node_prompts(node):
            fixed = getattr(node, "language", None)
            for lang in [fixed] if fixed else flow.languages:
                if (prompt, lang) in reported:
                    continue  # once per prompt: the first node that plays it
                problem = _prompt_problem(prompt, lang, catalogue, recordings)
                if problem:
                    reported.add((prompt, lang))
                    errors.append(FlowError(file, f"nodes.{node_id}.{path}", problem))
    for lang in flow.languages:
        if catalogue.voices and lang not in catalogue.voices:
            errors.append(FlowError(file, "languages", f"{lang!r} has no voice in {PROMPTS_FILE}"))
    if errors:
        return errors  # reachability on a graph with dangling edges only adds noise
    reachable = _reachable(flow)
    for node_id in nodes:
        if node_id not in reachable:
            errors.append(FlowError(file, f"nodes.{node_id}", "unreachable from `start`"))
    cycle = _loop_without_input(flow)
    if cycle:
        errors.append(
            FlowError(
                file,
                f"nodes.{cycle[0]}",
                "loop without caller input: " + " → ".join([*cycle, cycle[0]]),
            )
        )
    return errors


def _prompt_problem(
    name: str, lang: str, catalogue: PromptCatalogue, recordings: Path | None
) -> str | None:
    has_text = lang in catalogue.texts.get(name, {})
    if recordings is None:
        return None if has_text else f"prompt {name!r} has no {lang!r} text"
    if sound_files(recordings / "prompts" / lang, name):
        return None
    if has_text:
        return f"prompt {lang}/{name} {NOT_BUILT}"
    return f"prompt {name!r} has no {lang!r} text and no recording"


def _reachable(flow: Flow) -> set[str]:
    seen: set[str] = set()
    todo = [flow.start]
    while todo:
        node_id = todo.pop()
        if node_id in seen or node_id not in flow.nodes:
            continue
        seen.add(node_id)
        todo += [t for _, t in node_targets(flow.nodes[node_id])]
    return seen


def _loop_without_input(flow: Flow) -> list[str] | None:
    """A cycle through nodes that never wait for the caller would spin forever."""
    edges = {
        nid: [t for _, t in node_targets(n) if flow.nodes[t].type not in INPUT_TYPES]
        for nid, n in flow.nodes.items()
        if n.type not in INPUT_TYPES
    }
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(nid: str) -> list[str] | None:
        state[nid] = 1
        stack.append(nid)
        for nxt in edges.get(nid, []):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[nid] = 2
        return None

    for nid in edges:
        if nid not in state and (found := visit(nid)):
            return found
    return None
