"""Routing rules shared by every flow. Pure, no I/O.

The menus themselves (which key or intent leads to which queue) are data: ivr_flows/*.yaml.
"""

from __future__ import annotations

import re

# Where a caller goes when nobody (caller, menu, script) could decide: a coordinator helps them.
FALLBACK_QUEUE = "coordinator"
SUPPORTED_LANGUAGES = ("ru", "en")
# The longest choice we keep (calls.menu_choice is String(32)); anything longer is junk anyway.
MAX_CHOICE_LENGTH = 16

_NOT_A_KEY = re.compile(r"[^0-9*#A-D]")


def clean_choice(digits: str, limit: int = MAX_CHOICE_LENGTH) -> str:
    """What may be stored/logged of the caller's input: keypad symbols only, at most `limit`."""
    return _NOT_A_KEY.sub("", digits)[:limit]


def pick_language(requested: str | None, default: str) -> str:
    """The prompt language: the channel's if we have prompts for it, else the default."""
    lang = (requested or "").strip().lower()[:8]
    # Asterisk languages can carry a region ("en_GB"): match on the base language.
    base = lang.replace("-", "_").split("_", 1)[0]
    return base if base in SUPPORTED_LANGUAGES else default
