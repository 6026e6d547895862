"""CSV files: reading an admin's file (buildings, payer accounts): decoded, delimiter guessed, lines
numbered, whole-file problems and bad lines reported together. Pure.

Every importer checks every line before it writes anything: one bad line refuses the whole
file, with every bad line's number and reason, and nothing is half-imported.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

# OWASP's list: formula starters plus tab and carriage return, which some spreadsheets strip
# before looking at the next character.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Errors listed in full up to this many; beyond, "and N more".
MAX_ERRORS_SHOWN = 50


class CsvFileError(ValueError):
    """The file is refused; `errors` are (line number, reason), line 0 for the whole file."""

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        self.errors = errors
        shown = [f"line {n}: {why}" if n else why for n, why in errors[:MAX_ERRORS_SHOWN]]
        if len(errors) > MAX_ERRORS_SHOWN:
            shown.append(f"and {len(errors) - MAX_ERRORS_SHOWN} more")
        super().__init__("nothing imported:\n" + "\n".join(shown))


# A formula starter after a ';': where a spreadsheet whose list separator is ';' (Excel in
# Russian and most European locales, opening our comma-separated file) starts a new cell. Such
# a cell has no comma, so nothing quotes it.
_STARTER_AFTER_SEMICOLON = re.compile(r"(;\s*)(?=[=+\-@\t\r])")


def safe_cell(value: object) -> str:
    """One cell's text, defused if a spreadsheet would read it, or a part of it after a ';', as
    a formula (an apostrophe first, which spreadsheets show as plain text)."""
    if value is None:
        return ""
    text = _STARTER_AFTER_SEMICOLON.sub("\\1'", str(value))
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def clean_text(value: str) -> str:
    """Printable, whitespace collapsed."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in value).split())


def decode(data: bytes, max_bytes: int, error: type[CsvFileError] = CsvFileError) -> str:
    """The file as text (UTF-8, with or without a BOM), or `error` for the whole file."""
    if len(data) > max_bytes:
        raise error([(0, f"the file is larger than {max_bytes} bytes")])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise error([(0, f"not UTF-8 text (byte {err.start})")]) from None
    if "\x00" in text:
        raise error([(0, "not a text file (NUL bytes)")])
    return text


def lines(
    text: str, header: tuple[str, ...], max_rows: int, errors: list[tuple[int, str]]
) -> Iterator[tuple[int, list[str]]]:
    """(line number, stripped cells) of every non-blank line but a header line that names
    the columns (all of them, or a leading part); unreadable CSV and too many lines are
    appended to `errors`. Spreadsheets in Russian locales write `;`: a line with more `;`
    than `,` is read with `;` (a comma may then be inside a street name)."""
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        for number, cells in enumerate(reader, start=1):
            if number > max_rows:
                errors.append((number, f"more than {max_rows} lines"))
                return
            cells = [cell.strip() for cell in cells]
            if not any(cells):
                continue
            named = tuple(cell.lower() for cell in cells)
            if number == 1 and named == header[: len(named)] and len(named) >= 2:
                continue
            yield number, cells
    except csv.Error as err:
        errors.append((reader.line_num, f"unreadable CSV ({err})"))
