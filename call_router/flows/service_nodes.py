"""Flow nodes that reach beyond the menu: the meter services an `action` node calls (and
their outcomes), a jump to another flow, a transfer to a number, and the management company
the call is for."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from call_router.flows.vocabulary import NodeId, PromptName, Strict, VarName

# Services an `action` node may call, with the outcomes each can have. The first outcome is
# the success that follows `next`; the others may be mapped in `outcomes`, and any that is not
# (or a failure of the service itself) follows `on_error`.
ACTION_OUTCOMES: dict[str, tuple[str, ...]] = {
    # Is the code in `payer_var` a payer account billing gave (`hotline meters import`)? Any
    # code is, until accounts are imported.
    "payer_check": ("ok", "unknown"),
    # Does that account have the meter in `meter_var` (any, when billing lists none for it)?
    "meter_on_account": ("ok", "none"),
    # Is the reading in `reading_var` acceptable for payer + meter? Sets `last_reading`.
    "meter_check": ("ok", "below_last", "implausible_growth", "not_digits", "too_long"),
    # Store it (checked again); sets `reading_id`. With `replace`, the caller's last reading
    # (see meter_last) is replaced and kept in the history as corrected.
    "meter_store": ("ok", "below_last", "implausible_growth", "not_digits", "too_long"),
    # The last reading this caller phoned in for payer + meter, if they may still change it;
    # sets `last_reading`.
    "meter_last": ("found", "none"),
    # Delete that reading (kept in the history as deleted).
    "meter_delete": ("ok", "none"),
}
ActionService = Literal[
    "payer_check", "meter_on_account", "meter_check", "meter_store", "meter_last", "meter_delete"
]
MeterKindName = Literal["cold_water", "hot_water", "heat"]


class ActionArgs(Strict):
    """Which call variables a meter service reads, and its limits."""

    payer_var: VarName = "payer"
    meter_var: VarName = "meter"
    reading_var: VarName = "reading"
    # Check/store as a correction of the caller's last reading (compared with the one before).
    replace: bool = False
    # Units per month per meter kind (defaults in call_router/meter_readings.py).
    max_monthly_growth: dict[MeterKindName, int] = Field(default_factory=dict)

    @field_validator("max_monthly_growth")
    @classmethod
    def _positive(cls, value: dict[str, int]) -> dict[str, int]:
        for kind, limit in value.items():
            if not 0 < limit <= 10**8:
                raise ValueError(f"{kind}: a monthly growth must be between 1 and 10^8")
        return value


class ActionNode(Strict):
    """Call a registered service (meter readings) with the call's variables."""

    type: Literal["action"]
    service: ActionService
    args: ActionArgs = Field(default_factory=ActionArgs)
    next: NodeId
    outcomes: dict[str, NodeId] = Field(default_factory=dict)
    on_error: NodeId

    @model_validator(mode="after")
    def _known_outcomes(self) -> ActionNode:
        known = ACTION_OUTCOMES[self.service]
        for outcome in self.outcomes:
            if outcome not in known[1:]:
                raise ValueError(
                    f"{self.service} has no outcome {outcome!r}; "
                    f"it may map: {', '.join(known[1:])} (`next` is {known[0]!r})"
                )
        return self


class FlowJumpNode(Strict):
    """Continue in another flow file (e.g. the hotline menu hands over to `meters`)."""

    type: Literal["flow"]
    flow: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")


class TransferNode(Strict):
    """Dial an outside number through the carrier trunk (the gas emergency service). If it
    cannot be reached, the caller goes on to `on_failure` (a person of ours)."""

    type: Literal["transfer"]
    # A number, or `setting:gas_emergency_number` for the one in the hotline's settings.
    number: str = Field(pattern=r"^(\+?[0-9]{2,15}|setting:gas_emergency_number)$")
    prompt: PromptName | None = None
    ring_seconds: int = Field(default=30, ge=5, le=120)
    on_failure: NodeId


class CompanyNode(Strict):
    """Which management company the call is for (call_router/tenant_routing.py).

    Known - a tenant's own number, the caller's registered phone or earlier call - or not
    asked on this number (not one of the centre's registered numbers, or no building has a
    house code): straight on to `next`. Unknown on the centre's number: on to `ask`, which
    collects the house code into `code_var`, reads it back, has it confirmed and comes back
    here; then the code's building gives the tenant (`next`), or nothing does (`on_failure`,
    a coordinator). The caller's keys are checked here again: 1-8 digits or nothing.

    With `speech_prompt` and `heard`, a caller whose language has a speech model is first
    asked for the street and house in words (call_router/spoken_addresses.py): a building
    understood puts its code into `code_var` and goes on to `heard` (its read-back and
    confirmation, as for a keyed code); a key pressed, or nothing understood, goes to `ask`."""

    type: Literal["company"]
    code_var: VarName = "house_code"
    next: NodeId
    ask: NodeId
    on_failure: NodeId
    speech_prompt: PromptName | None = None
    heard: NodeId | None = None

    @model_validator(mode="after")
    def _speech_needs_both(self) -> CompanyNode:
        if (self.speech_prompt is None) != (self.heard is None):
            raise ValueError("speech_prompt and heard go together")
        return self
