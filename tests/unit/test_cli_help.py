"""Every `hotline` command, and every option and argument of it, says what it is in `--help`
(found by a newcomer's review: some showed bare option names)."""

from __future__ import annotations

from typing import Any

import typer

from hotline.cli import app


def _walk(command: Any, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    """Every command under `command` (itself included) with its path from `hotline`."""
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _walk(sub, (*path, name))
    return found


def test_every_command_option_and_argument_has_help() -> None:
    commands = _walk(typer.main.get_command(app), ())
    assert len(commands) > 100  # the whole tree was walked, groups and their commands
    missing = [" ".join(("hotline", *path)) for path, command in commands[1:] if not command.help]
    missing += [
        f"{' '.join(('hotline', *path))} {param.opts[0]}"
        for path, command in commands
        for param in command.params
        if param.name != "help" and not (getattr(param, "help", None) or "").strip()
    ]
    assert missing == [], "no help text: " + ", ".join(missing)
