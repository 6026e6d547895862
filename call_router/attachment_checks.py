"""What a service request's attachment may be, decided from its bytes: a JPEG, PNG or WebP
photo, or a PDF. Never from the file name or the browser's Content-Type (both are the
uploader's word): a page renamed `.jpg` is refused, so is an SVG or HTML file (they run
script when opened). Images are also parsed by Pillow (`verify`), so a file that only starts
like a JPEG is refused too.

Pure: bytes in, a verdict out. The store is call_router/request_attachments.py.
"""

from __future__ import annotations

import io
import re
import unicodedata
import warnings
from dataclasses import dataclass
from typing import Final

from PIL import Image

from call_router.accounts import CREW, DISPATCHER, OPERATOR, SUPERVISOR
from call_router.request_lifecycle import LifecycleError

JPEG: Final = "image/jpeg"
PNG: Final = "image/png"
WEBP: Final = "image/webp"
PDF: Final = "application/pdf"
# Content type -> the extension a download gets (never the uploader's).
EXTENSIONS: Final = {JPEG: ".jpg", PNG: ".png", WEBP: ".webp", PDF: ".pdf"}
# Pillow's format name -> content type: only these images are accepted.
PILLOW_FORMATS: Final = {"JPEG": JPEG, "PNG": PNG, "WEBP": WEBP}
# Larger pictures than this are refused (a "decompression bomb": small file, huge image).
MAX_PIXELS: Final = 50_000_000
MAX_NAME: Final = 128
ACCEPTED: Final = "a JPEG, PNG or WebP photo, or a PDF"

_UNSAFE_NAME = re.compile(r"[^\w .()+-]")


@dataclass(frozen=True)
class Verdict:
    content_type: str
    name: str


def sniff(data: bytes) -> str | None:
    """The content type the first bytes say, or None (not one we accept)."""
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    if data.startswith(b"%PDF-"):
        return PDF
    return None


def _image_ok(data: bytes, expected: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if PILLOW_FORMATS.get(image.format or "") != expected:
                    return False
                width, height = image.size
                if width * height > MAX_PIXELS:
                    return False
                image.verify()
    except Exception:  # whatever a broken or hostile file makes Pillow raise
        return False
    return True


def _pdf_ok(data: bytes) -> bool:
    # A PDF ends with %%EOF (possibly followed by whitespace) after its trailer.
    return b"%%EOF" in data[-1024:]


def clean_name(name: str | None, content_type: str) -> str:
    """The uploader's file name made safe to show and to put in Content-Disposition: no
    folders (`../../etc/passwd` -> `passwd`), no control or quote characters, at most
    MAX_NAME characters, and the extension of what the content really is."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFKC", base)
    stem = base.rsplit(".", 1)[0] if "." in base.lstrip(".") else base.lstrip(".")
    stem = _UNSAFE_NAME.sub("_", stem).strip(" ._") or "attachment"
    extension = EXTENSIONS[content_type]
    return stem[: MAX_NAME - len(extension)] + extension


def check(data: bytes, name: str | None, *, max_bytes: int) -> Verdict:
    """Accept `data` as an attachment, or refuse it (LifecycleError with a message for the
    uploader: code `too_large`, `empty` or `file_type`)."""
    if len(data) > max_bytes:
        raise LifecycleError(
            f"the file is too large: {len(data)} bytes, at most {max_bytes}", "too_large"
        )
    if not data:
        raise LifecycleError("the file is empty", "empty")
    content_type = sniff(data)
    if content_type is None:
        raise LifecycleError(f"not an accepted file: send {ACCEPTED}", "file_type")
    valid = _pdf_ok(data) if content_type == PDF else _image_ok(data, content_type)
    if not valid:
        raise LifecycleError(
            f"the file looks like {EXTENSIONS[content_type][1:].upper()} but is not a valid"
            f" one: send {ACCEPTED}",
            "file_type",
        )
    return Verdict(content_type=content_type, name=clean_name(name, content_type))


def may_read(role: str, own_crew: int | None, request_crew: int | None) -> bool:
    """Who may see a request's attachments (the tenant wall has already hidden other
    tenants' requests): the office roles; a crew account only for its own crew's jobs."""
    if role == CREW:
        return own_crew is not None and own_crew == request_crew
    return role in (SUPERVISOR, DISPATCHER, OPERATOR)
