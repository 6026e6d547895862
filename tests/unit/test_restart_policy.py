"""When the supervisor restarts a dead service, and when it gives up (plain values)."""

from __future__ import annotations

from hotline.supervisor import RestartPolicy

POLICY = RestartPolicy(min_uptime=10, first_delay=1, max_delay=8, max_fast_crashes=5)


def test_a_service_that_ran_a_while_is_restarted_at_once_and_forgiven() -> None:
    assert POLICY.after_exit(uptime=3600, fast_crashes=0) == (0, 0.0)
    # Earlier fast crashes are forgiven once a run lasted.
    assert POLICY.after_exit(uptime=10, fast_crashes=4) == (0, 0.0)


def test_fast_crashes_back_off_then_give_up() -> None:
    crashes, delays = 0, []
    while True:
        crashes, delay = POLICY.after_exit(uptime=0.5, fast_crashes=crashes)
        if delay is None:
            break
        delays.append(delay)
    assert delays == [1, 2, 4, 8, 8]
    assert crashes == 6
