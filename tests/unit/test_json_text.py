"""The call log's JSON text (call_router/json_text.py): orjson's, and json.dumps' for what
orjson refuses, so a write accepted before is not refused now."""

from __future__ import annotations

import json

from call_router.json_text import dumps


def test_a_timeline_entry_reads_back_as_it_was_written() -> None:
    data = {"steps": [{"node": "menu", "digits": "1", "next": None}], "us": [0, 17], "ok": True}
    assert json.loads(dumps(data)) == data


def test_a_caller_name_in_cyrillic_is_kept_as_text() -> None:
    assert json.loads(dumps({"name": "Иван Петров"})) == {"name": "Иван Петров"}


def test_what_orjson_refuses_is_written_as_json_dumps_writes_it() -> None:
    huge = {"n": 2**70}  # past 64 bits
    numbered = {1: "a", 2: "b"}  # keys that are not strings
    assert dumps(huge) == json.dumps(huge)
    assert dumps(numbered) == json.dumps(numbered)
