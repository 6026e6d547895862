"""Where call-backs may dial: the outbound numbering plan. Pure: no I/O.

A callback entry's number comes from caller ID, which the carrier passes on unchecked: an
attacker who calls from a spoofed international or premium-rate number and hangs up in the
queue would otherwise have the hotline dial it back at its own cost (revenue-share fraud).
So a call-back only dials numbers of the allowed countries and number types (phonenumbers'
metadata, the library that already normalises caller numbers), minus denied prefixes.

The same plan is enforced twice: here, when an entry is created and before each dial, and in
the dialplan (`asterisk_patterns`, rendered into extensions.conf), so a number that gets past
Python by any other way is still never sent to the trunk.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberType

if TYPE_CHECKING:
    from call_router.settings import Settings

# phonenumbers' types, by the name settings use, and where their pattern lives in the metadata.
_TYPE_FIELDS = {
    "FIXED_LINE": "fixed_line",
    "MOBILE": "mobile",
    "TOLL_FREE": "toll_free",
    "PREMIUM_RATE": "premium_rate",
    "SHARED_COST": "shared_cost",
    "VOIP": "voip",
    "PERSONAL_NUMBER": "personal_number",
    "PAGER": "pager",
    "UAN": "uan",
    "VOICEMAIL": "voicemail",
}
TYPE_NAMES = frozenset(_TYPE_FIELDS) | {"FIXED_LINE_OR_MOBILE"}
DEFAULT_TYPES = ("FIXED_LINE", "MOBILE", "FIXED_LINE_OR_MOBILE")
# More dialplan patterns than this means the metadata grew a shape we do not expand well.
_MAX_PATTERNS = 5000

# Refusal reasons (stable: the API and the callback list show them).
REFUSED_INVALID = "invalid_number"
REFUSED_INTERNATIONAL = "international"
REFUSED_DENIED_PREFIX = "denied_prefix"


class DialPlanError(ValueError):
    """A numbering-plan setting that cannot be used."""


@dataclass(frozen=True)
class DialPlan:
    regions: frozenset[str]
    types: frozenset[str]
    denied_prefixes: tuple[str, ...] = ()

    @classmethod
    def build(
        cls, regions: Iterable[str], types: Iterable[str], denied_prefixes: Iterable[str] = ()
    ) -> DialPlan:
        region_set = frozenset(r.upper() for r in regions)
        unknown = sorted(r for r in region_set if r not in phonenumbers.SUPPORTED_REGIONS)
        if not region_set or unknown:
            raise DialPlanError(f"dial-out countries must be ISO region codes, got {unknown}")
        type_set = frozenset(t.upper() for t in types)
        if type_set - TYPE_NAMES:
            raise DialPlanError(f"unknown number types {sorted(type_set - TYPE_NAMES)}")
        prefixes = tuple(denied_prefixes)
        for prefix in prefixes:
            if not re.fullmatch(r"\+[0-9]{1,14}", prefix):
                raise DialPlanError(f"denied prefix {prefix!r} must look like +7809")
        return cls(region_set, type_set, prefixes)

    @classmethod
    def from_settings(cls, settings: Settings) -> DialPlan:
        return cls.build(
            settings.dial_out_countries or [settings.country_code],
            settings.dial_out_number_types,
            settings.dial_out_denied_prefixes,
        )

    @classmethod
    def national(cls, country: str) -> DialPlan:
        """The default: the hotline's own country, landlines and mobiles only."""
        return cls.build([country], DEFAULT_TYPES)

    # --- the Python check --------------------------------------------------------------------

    def refusal(self, number: str) -> str | None:
        """Why `number` (E.164) may not be dialled, or None when it may."""
        try:
            parsed = phonenumbers.parse(number, None)
        except phonenumbers.NumberParseException:
            return REFUSED_INVALID
        if not phonenumbers.is_valid_number(parsed):
            return REFUSED_INVALID
        if phonenumbers.region_code_for_number(parsed) not in self.regions:
            return REFUSED_INTERNATIONAL
        e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        if any(e164.startswith(prefix) for prefix in self.denied_prefixes):
            return REFUSED_DENIED_PREFIX
        kind = _type_name(phonenumbers.number_type(parsed))
        if kind not in self.types:
            return kind.lower()
        return None

    # --- the dialplan's check ----------------------------------------------------------------

    def asterisk_patterns(self) -> list[str]:
        """Extension patterns (`_+7[34]0[12]XXXXXXX`) of every number the plan allows, built
        from the same metadata; a number that matches none is never dialled."""
        return self._patterns(self.types)

    def asterisk_denied_patterns(self) -> list[str]:
        """Patterns of the refused types in allowed countries (phonenumbers gives e.g. premium
        rate precedence over a landline pattern that overlaps it), plus the denied prefixes."""
        denied = self._patterns(frozenset(_TYPE_FIELDS) - self.types)
        return denied + [f"_{prefix}." for prefix in self.denied_prefixes]

    def _patterns(self, types: frozenset[str]) -> list[str]:
        patterns: list[str] = []
        for region in sorted(self.regions):
            metadata = PhoneMetadata.metadata_for_region(region)
            if metadata is None or metadata.country_code is None:
                raise DialPlanError(f"no numbering metadata for {region}")
            for name in sorted(types & set(_TYPE_FIELDS)):
                desc = getattr(metadata, _TYPE_FIELDS[name])
                if desc is None or not desc.national_number_pattern:
                    continue
                general = metadata.general_desc
                lengths = desc.possible_length or (general.possible_length if general else ())
                for digits in expand(desc.national_number_pattern):
                    if not lengths or len(digits) in lengths:
                        patterns.append(f"_+{metadata.country_code}{pattern_text(digits)}")
        unique = sorted(set(patterns))
        if len(unique) > _MAX_PATTERNS:
            raise DialPlanError(f"the numbering plan expands to {len(unique)} dialplan patterns")
        return unique


def _type_name(kind: int) -> str:
    for name in TYPE_NAMES | {"UNKNOWN"}:
        if getattr(PhoneNumberType, name) == kind:
            return name
    return "UNKNOWN"


# --- phonenumbers' regular expressions as Asterisk extension patterns --------------------------
# The metadata uses a small regex subset: digits, \d, [classes], (?:groups), |, {n}, {n,m}, ?.
# Each pattern expands into sequences of digit sets, one per position (alternatives and
# repetitions multiplied out), which map one to one onto Asterisk pattern characters.

_ALL = frozenset("0123456789")
Digits = tuple[frozenset[str], ...]


def expand(regex: str) -> list[Digits]:
    parser = _Parser(regex)
    result = parser.alternation()
    if parser.pos != len(regex):
        raise DialPlanError(f"cannot read the number pattern {regex!r} at {parser.pos}")
    return result


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def alternation(self) -> list[Digits]:
        options = self.sequence()
        while self._peek() == "|":
            self.pos += 1
            options = options + self.sequence()
        return options

    def sequence(self) -> list[Digits]:
        current: list[Digits] = [()]
        while self._peek() not in ("", "|", ")"):
            item = self._quantified(self._atom())
            current = [a + b for a in current for b in item]
            if len(current) > _MAX_PATTERNS:
                raise DialPlanError(f"the number pattern {self.text!r} expands too far")
        return current

    def _atom(self) -> list[Digits]:
        char = self._peek()
        if self.text.startswith("(?:", self.pos):
            self.pos += 3
            inner = self.alternation()
            self._expect(")")
            return inner
        if char == "[":
            end = self.text.index("]", self.pos)
            body = self.text[self.pos + 1 : end]
            self.pos = end + 1
            return [(_char_class(body),)]
        if self.text.startswith(r"\d", self.pos):
            self.pos += 2
            return [(_ALL,)]
        if char.isdigit():
            self.pos += 1
            return [(frozenset(char),)]
        raise DialPlanError(f"unexpected {char!r} in the number pattern {self.text!r}")

    def _quantified(self, item: list[Digits]) -> list[Digits]:
        if self._peek() == "?":
            self.pos += 1
            return [(), *item]
        if self._peek() != "{":
            return item
        end = self.text.index("}", self.pos)
        low_text, _, high_text = self.text[self.pos + 1 : end].partition(",")
        self.pos = end + 1
        low = int(low_text)
        high = int(high_text) if high_text else low
        out: list[Digits] = []
        for count in range(low, high + 1):
            combos: list[Digits] = [()]
            for _ in range(count):
                combos = [a + b for a in combos for b in item]
            out.extend(combos)
        return out

    def _expect(self, char: str) -> None:
        if self._peek() != char:
            raise DialPlanError(f"expected {char!r} in the number pattern {self.text!r}")
        self.pos += 1


def _char_class(body: str) -> frozenset[str]:
    chars: set[str] = set()
    i = 0
    while i < len(body):
        if body.startswith(r"\d", i):
            chars |= _ALL
            i += 2
        elif i + 2 < len(body) and body[i + 1] == "-":
            chars |= {str(d) for d in range(int(body[i]), int(body[i + 2]) + 1)}
            i += 3
        else:
            chars.add(body[i])
            i += 1
    if not chars <= _ALL:
        raise DialPlanError(f"non-digit class [{body}] in a number pattern")
    return frozenset(chars)


def pattern_text(digits: Sequence[frozenset[str]]) -> str:
    """Asterisk's spelling: X any digit, Z 1-9, N 2-9, a digit, or a [class]."""
    out = []
    for chars in digits:
        if chars == _ALL:
            out.append("X")
        elif chars == _ALL - {"0"}:
            out.append("Z")
        elif chars == _ALL - {"0", "1"}:
            out.append("N")
        elif len(chars) == 1:
            out.append(next(iter(chars)))
        else:
            out.append("[" + "".join(sorted(chars)) + "]")
    return "".join(out)
