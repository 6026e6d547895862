"""The writer process (agi_scripts/writer_process.py) with a call log whose every burst holds
the GIL for `HOTLINE_TEST_GIL_HOLD` iterations of a C loop first (no bytecode in between: no
other thread of the process can run meanwhile). Used by tests/unit/test_writer_process.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agi_scripts.writer_process import main  # noqa: E402
from call_router.call_log import CallLog  # noqa: E402

HOLD = int(os.environ.get("HOTLINE_TEST_GIL_HOLD", "0"))
_ensure_calls = CallLog.ensure_calls


def ensure_calls(self: CallLog, arrivals: Any) -> dict[str, int]:
    sum(range(HOLD))  # one C call: the GIL is held throughout
    return _ensure_calls(self, arrivals)


CallLog.ensure_calls = ensure_calls  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
