"""JSON text as the call log stores it: orjson (in C: a timeline entry's few steps in a tenth
of json.dumps' time, BENCHMARKS.md), json.dumps for what orjson refuses (an integer past 64
bits, a key that is not a string) so nothing that was written before is refused now. Pure."""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(value)
