"""Every emergency by key, day and night, in the built-in flow (ivr_flows/hotline.yaml), over
the real AGI protocol against the scripted Asterisk (issue 16).

Day: key 7 of the menu, then 1 gas (the gas service), 2 flooding (plumbing), 3 someone stuck in
a lift (lift), 4 no heating in frost (heating). Night: key 1 of the after-hours menu, then the
same keys, every one to the duty team. Every emergency route carries priority 10, which the
dialplan turns into QUEUE_PRIO: the caller is put ahead of everyone waiting in that queue.
"""

from __future__ import annotations

import pytest

from agi_scripts.server import AgiServer
from call_router import channel_vars
from call_router.db import Database
from tests.unit import test_flow_engine as engine_tests
from tests.unit.test_agi_protocol import FakeAsterisk, event_kinds, run_call
from tests.unit.test_flow_engine import Stack, dialling, prompt

# The built-in flow served by a FastAGI server over a scripted Asterisk, day and night.
settings = engine_tests.settings
stack = engine_tests.stack
built_in_at_night = engine_tests.built_in_at_night

EMERGENCY_PRIORITY = "10"


@pytest.mark.parametrize(
    ("key", "queue", "intent"),
    [("2", "plumbing", "flooding"), ("3", "lift", "lift_stuck"), ("4", "heating", "no_heating")],
)
async def test_by_day_each_emergency_reaches_its_team_ahead_of_the_queue(
    stack: Stack, key: str, queue: str, intent: str
) -> None:
    server = await stack.serve(None)
    fake = FakeAsterisk(keys=[("7", False), (key, False)])
    await run_call(server, fake)
    assert prompt("emergencies") in fake.played
    assert fake.set_vars[channel_vars.QUEUE] == queue
    assert fake.set_vars[channel_vars.INTENT] == intent
    assert fake.set_vars[channel_vars.PRIORITY] == EMERGENCY_PRIORITY


@pytest.mark.parametrize(
    ("key", "intent"), [("2", "flooding"), ("3", "lift_stuck"), ("4", "no_heating")]
)
async def test_at_night_each_emergency_reaches_the_duty_team_ahead_of_the_queue(
    built_in_at_night: AgiServer, key: str, intent: str
) -> None:
    fake = FakeAsterisk(keys=[("1", False), (key, False)])
    await run_call(built_in_at_night, fake)
    assert fake.played[:2] == [prompt("after_hours"), prompt("emergencies")]
    assert fake.set_vars[channel_vars.QUEUE] == "duty"
    assert fake.set_vars[channel_vars.INTENT] == intent
    assert fake.set_vars[channel_vars.PRIORITY] == EMERGENCY_PRIORITY


async def test_by_day_a_gas_smell_by_key_is_put_through_to_the_gas_service(
    stack: Stack, db: Database
) -> None:
    server = await stack.serve(None)
    fake = FakeAsterisk(keys=[("7", False), ("1", False)], override=dialling("ANSWER"))
    await run_call(server, fake)
    assert 'EXEC Dial "PJSIP/104@pstn,30"' in fake.commands
    assert channel_vars.QUEUE not in fake.set_vars
    assert event_kinds(db)["transfer"]["status"] == "ANSWER"


async def test_at_night_a_gas_smell_by_key_is_put_through_to_the_gas_service(
    built_in_at_night: AgiServer, db: Database
) -> None:
    fake = FakeAsterisk(keys=[("1", False), ("1", False)], override=dialling("ANSWER"))
    await run_call(built_in_at_night, fake)
    assert 'EXEC Dial "PJSIP/104@pstn,30"' in fake.commands
    assert event_kinds(db)["transfer"]["status"] == "ANSWER"


async def test_a_caller_who_presses_nothing_in_the_emergency_menu_reaches_the_duty_team(
    stack: Stack,
) -> None:
    server = await stack.serve(None)
    fake = FakeAsterisk(keys=[("7", False)])
    await run_call(server, fake)
    assert fake.set_vars[channel_vars.QUEUE] == "duty"
    assert fake.set_vars[channel_vars.INTENT] == "emergency"
    assert fake.set_vars[channel_vars.PRIORITY] == EMERGENCY_PRIORITY
    # Asked once: an emergency caller is not made to listen to the menu again.
    assert fake.played.count(prompt("emergencies")) == 1
