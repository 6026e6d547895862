"""Supervisors' call control: end a stuck call, move waiting callers, listen/whisper/barge.

Every action goes through one `AmiSender` handed in by the caller (the dashboard's long-lived
`AmiLink`, the CLI's one-shot client) and leaves one audit row (`control_actions`, behind the
tenant wall) whatever happened: who, when, what, on which call or operator, the result.

What Asterisk does:
- **hang up** (`ending.py`): every live channel of the call (same linkedid) gets `Hangup`; a
  row left open with no channel any more (a stuck row after a fault) is closed here. Either way
  the timeline says `ended_by_supervisor` with who, and the call's `hangup_by` is `supervisor`.
- **move** (`moving.py`): the caller's channel, still waiting (menu or queue, not with an
  operator), gets `HOTLINE_PRIORITY` raised to at least 1 (ahead of callers who have not
  waited, as the overflow does) and a `Redirect` to `[hotline-queues]` (a queue) or
  `[hotline-move]` (an operator's phone, then back to the caller's queue if nobody answers).
  A Redirect either happens or not: the caller is never between queues.
- **monitor** (`monitoring.py`): the supervisor's own phone (their account's linked roster
  login) is rung by an Async Originate into `[hotline-spy]`, which runs ChanSpy on the
  operator's channel with `q` (no name/beep to the supervisor), `d` (DTMF 4 listen, 5 whisper,
  6 barge during the same session), `E`/`S` (end with the spied call) and `w` (whisper) or `B`
  (barge).
- **operators** (pause, unpause, log out, queues) are call_router/agents.py; their audit rows
  and every other are `audit.py`.
"""

from __future__ import annotations

from call_router.call_control.ending import EndingMixin
from call_router.call_control.monitoring import MonitoringMixin
from call_router.call_control.moving import MovingMixin


class CallControl(EndingMixin, MovingMixin, MonitoringMixin):
    """The actions, each audited: `hangup`, `move`, `monitor`, `monitors`."""
