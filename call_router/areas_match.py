"""Area keys and the one rule of which callers an area's incident reaches. Pure.

An area is a path of keys, city → district → street → house, joined by `/`:
`irkutsk/oktyabrsky/lenina/14`. A key is the name's letters and digits, lower case, other
characters turned into `-` ("ул. Ленина" → `ул-ленина`, house "14/2" → `14-2`), so an
address typed by an operator finds the node an admin imported.
"""

from __future__ import annotations

import re

SEPARATOR = "/"
LEVELS = ("city", "district", "street", "house")
MAX_KEY = 64
_NOT_KEY = re.compile(r"[^\w]+|_+")
# Words that say "street" (not which one): an operator's "ул. Ленина" is the admin's "Ленина".
STREET_WORDS = frozenset({"ул", "улица", "street", "st", "str"})


def key(name: str) -> str:
    """A name's key: letters and digits in lower case, runs of anything else as one `-`."""
    return _NOT_KEY.sub("-", name.casefold()).strip("-")[:MAX_KEY]


def street_key(name: str) -> str:
    """A street name's key without the word "street" (either end, any language we speak)."""
    parts = [p for p in key(name).split("-") if p]
    while parts and parts[0] in STREET_WORDS:
        parts.pop(0)
    while parts and parts[-1] in STREET_WORDS:
        parts.pop()
    return "-".join(parts)


def normalise(area: str) -> str:
    """An area as typed (`Irkutsk / Oktyabrsky`) as its path (`irkutsk/oktyabrsky`); a label
    that is not a path (`Lenina 5`) is only trimmed and lower-cased, as matched before."""
    area = area.strip()
    if SEPARATOR not in area:
        return area.casefold()
    return SEPARATOR.join(key(part) for part in area.split(SEPARATOR) if key(part))


def covers(target: str, caller_area: str) -> bool:
    """Does an incident for `target` reach a caller from `caller_area`? Yes when it is the
    same area or the caller's is inside it: a district's incident reaches its streets and
    houses, a house's incident does not reach the rest of its street."""
    target, caller_area = normalise(target), normalise(caller_area)
    if not target or not caller_area:
        return False
    return caller_area == target or caller_area.startswith(target + SEPARATOR)
