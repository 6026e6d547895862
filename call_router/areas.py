"""The service area's hierarchy (city → district → street → house): imported from CSV
(`hotline areas import`), listed, and used to place a caller (their request's address, their
registered phone's building, or a code they key) so that an incident for a district is heard
by callers from its streets and houses (call_router/areas_match.py is the rule).

CSV: one node a line, `city,district,street,house,code`; a line names a node by its ancestors,
a higher node leaves the lower columns empty (`Irkutsk,Oktyabrsky,,,11` is a district with
keypad code 11). Ancestors a line implies are created too. Every line is checked before
anything is written (call_router/csv_files.py): one bad line refuses the file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from call_router import csv_files
from call_router.areas_match import LEVELS, SEPARATOR, key, normalise, street_key
from call_router.csv_files import clean_text
from call_router.flow_models import Area

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_ROWS = 200_000
MAX_NAME = 128
CODE_DIGITS = (1, 6)
HEADER = (*LEVELS, "code")


class AreaImportError(csv_files.CsvFileError):
    """The file is refused; nothing was written."""


@dataclass(frozen=True)
class AreaRow:
    line: int
    names: tuple[str, ...]  # city first; as many as the node's level
    code: str | None

    @property
    def path(self) -> str:
        return SEPARATOR.join(key(name) for name in self.names)


@dataclass
class AreaImport:
    added: int = 0
    updated: int = 0
    paths: list[str] = field(default_factory=list)


def _row(number: int, cells: list[str]) -> tuple[AreaRow | None, str | None]:
    if len(cells) > len(HEADER):
        return None, f"expected {','.join(HEADER)} (at most {len(HEADER)} columns)"
    names_cells = (cells + [""] * len(HEADER))[: len(LEVELS)]
    code = (cells[len(LEVELS)] if len(cells) > len(LEVELS) else "").strip()
    names = [clean_text(cell) for cell in names_cells]
    while names and not names[-1]:
        names.pop()
    if not names:
        return None, "no city"
    for level, name in zip(LEVELS, names, strict=False):
        if not name:
            return None, f"the {level} is empty but a lower level is given"
        if not key(name):
            return None, f"the {level} {name[:40]!r} has no letters or digits"
        if len(name) > MAX_NAME:
            return None, f"the {level} is longer than {MAX_NAME} characters"
    low, high = CODE_DIGITS
    if code and (not code.isascii() or not code.isdigit() or not low <= len(code) <= high):
        return None, f"the code must be {low}-{high} digits, got {clean_text(code)[:20]!r}"
    return AreaRow(number, tuple(names), code or None), None


def parse_csv(data: bytes) -> list[AreaRow]:
    """The file's nodes, or AreaImportError listing every bad line. Pure."""
    text = csv_files.decode(data, MAX_FILE_BYTES, AreaImportError)
    rows: list[AreaRow] = []
    errors: list[tuple[int, str]] = []
    seen_codes: dict[str, int] = {}
    for number, cells in csv_files.lines(text, HEADER, MAX_ROWS, errors):
        row, problem = _row(number, cells)
        if row is None:
            errors.append((number, problem or "unreadable"))
            continue
        if row.code is not None:
            if row.code in seen_codes:
                errors.append((number, f"code {row.code} is also on line {seen_codes[row.code]}"))
                continue
            seen_codes[row.code] = number
        rows.append(row)
    if errors:
        raise AreaImportError(errors)
    if not rows:
        raise AreaImportError([(0, "no areas in the file")])
    return rows


def import_rows(session: Session, rows: list[AreaRow]) -> AreaImport:
    """Add the nodes and the ancestors they imply; a node already there takes the file's name
    and code. A code another node keeps is refused (AreaImportError), nothing written."""
    wanted: dict[str, tuple[str, int]] = {}  # path -> (name, level)
    codes: dict[str, str | None] = {}  # path -> code, for the nodes the file names
    for row in rows:
        for depth in range(1, len(row.names) + 1):
            path = SEPARATOR.join(key(name) for name in row.names[:depth])
            if depth == len(row.names):
                wanted[path] = (row.names[-1], depth)
                codes[path] = row.code
            else:
                wanted.setdefault(path, (row.names[depth - 1], depth))
    existing = {a.path: a for a in session.scalars(select(Area))}
    # The codes once imported: the file's for the nodes it names, the others' as they are.
    final = {path: a.code for path, a in existing.items() if a.code and path not in codes}
    holders: dict[str, str] = {code: path for path, code in final.items() if code}
    line_of = {row.path: row.line for row in rows}
    errors = [
        (line_of[path], f"code {code} belongs to {holders[code]}")
        for path, code in codes.items()
        if code is not None and code in holders
    ]
    if errors:
        raise AreaImportError(errors)
    # Codes the file moves between nodes are let go first: the unique index never sees two.
    for path in codes:
        if path in existing and existing[path].code != codes[path]:
            existing[path].code = None
    session.flush()
    result = AreaImport()
    for path, (name, level) in wanted.items():
        area = existing.get(path)
        if area is None:
            session.add(Area(path=path, name=name, level=level, code=codes.get(path)))
            result.added += 1
        else:
            area.name = name
            if path in codes:
                area.code = codes[path]
            result.updated += 1
        result.paths.append(path)
    session.flush()
    return result


def listing(session: Session) -> list[Area]:
    """Every node, each after its parent (sorted by path)."""
    return list(session.scalars(select(Area).order_by(Area.path)))


def as_json(area: Area) -> dict[str, object]:
    return {
        "path": area.path,
        "name": area.name,
        "level": LEVELS[area.level - 1] if 1 <= area.level <= len(LEVELS) else area.level,
        "code": area.code,
    }


def resolve_targets(session: Session, typed: Iterable[str]) -> tuple[list[str], list[str]]:
    """An incident's areas as typed: (stored values, unknown ones). A typed area that names
    a node (its path, any case or spacing) is stored as the path; once a hierarchy is
    imported, one with a `/` that names none is unknown (a typo no caller would ever match);
    other words stay a free label, matched as typed (a flow may `set` such an `area`)."""
    known = set(session.scalars(select(Area.path)))
    stored: list[str] = []
    unknown: list[str] = []
    for area in typed:
        path = normalise(area)
        if path in known or key(area) in known:
            stored.append(path if path in known else key(area))
        elif SEPARATOR in area and known:
            unknown.append(area)
        else:
            stored.append(area.strip())
    return stored, unknown


@dataclass(frozen=True)
class AreaIndex:
    """The hierarchy in memory, for placing a caller: street keys, houses, district codes."""

    paths: frozenset[str]
    codes: dict[str, str]  # keypad code -> path
    streets: dict[str, tuple[str, ...]]  # street key -> street paths (one name, many districts)

    @classmethod
    def build(cls, areas: Iterable[tuple[str, int, str | None]]) -> AreaIndex:
        """From (path, level, code) rows."""
        paths: set[str] = set()
        codes: dict[str, str] = {}
        streets: dict[str, list[str]] = {}
        for path, level, code in areas:
            paths.add(path)
            if code:
                codes[code] = path
            if level == LEVELS.index("street") + 1:
                streets.setdefault(street_key(path.rsplit(SEPARATOR, 1)[-1]), []).append(path)
        return cls(frozenset(paths), codes, {k: tuple(v) for k, v in streets.items()})

    def place(self, street: str, house: str, district: str | None = None) -> str | None:
        """The most precise node of an address (its house, else its street); None when the
        street is unknown, or the name is a street of several districts and none is said."""
        candidates = self.streets.get(street_key(street), ())
        if district and len(candidates) > 1:
            wanted = key(district)
            candidates = tuple(c for c in candidates if c.split(SEPARATOR)[1:2] == [wanted])
        if len(candidates) != 1:
            return None
        house_path = candidates[0] + SEPARATOR + key(house) if key(house) else ""
        return house_path if house_path in self.paths else candidates[0]


def load_index(session: Session) -> AreaIndex:
    rows = session.execute(select(Area.path, Area.level, Area.code))
    return AreaIndex.build((path, level, code) for path, level, code in rows)
