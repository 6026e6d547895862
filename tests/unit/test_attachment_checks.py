"""What a request attachment may be, judged from its bytes (call_router/attachment_checks.py):
real photos and PDFs pass; a page renamed .jpg, an SVG, a truncated JPEG, an oversized file
are refused with a clear message; the uploader's file name never carries a folder."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from call_router import attachment_checks as checks
from call_router.request_lifecycle import LifecycleError

LIMIT = 1024 * 1024


def image_bytes(fmt: str, size: tuple[int, int] = (32, 24)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format=fmt)
    return out.getvalue()


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (image_bytes("JPEG"), checks.JPEG),
        (image_bytes("PNG"), checks.PNG),
        (image_bytes("WEBP"), checks.WEBP),
        (PDF, checks.PDF),
    ],
)
def test_real_photos_and_pdfs_pass(data: bytes, expected: str) -> None:
    verdict = checks.check(data, "IMG_0001.jpeg", max_bytes=LIMIT)
    assert verdict.content_type == expected
    assert verdict.name == "IMG_0001" + checks.EXTENSIONS[expected]


@pytest.mark.parametrize(
    "data",
    [
        b"<html><script>alert(document.cookie)</script></html>",
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
        b"GIF89a" + b"\x00" * 64,
        b"MZ\x90\x00" + b"\x00" * 64,
    ],
)
def test_anything_else_renamed_jpg_is_refused(data: bytes) -> None:
    with pytest.raises(LifecycleError) as refused:
        checks.check(data, "photo.jpg", max_bytes=LIMIT)
    assert refused.value.code == "file_type"
    assert "JPEG, PNG or WebP photo, or a PDF" in str(refused.value)


def test_a_file_that_only_starts_like_a_jpeg_is_refused() -> None:
    fake = b"\xff\xd8\xff\xe0" + b"<script>alert(1)</script>" * 10
    truncated = image_bytes("PNG")[:40]
    for data in (fake, truncated):
        with pytest.raises(LifecycleError) as refused:
            checks.check(data, "x.jpg", max_bytes=LIMIT)
        assert refused.value.code == "file_type" and "not a valid one" in str(refused.value)


def test_a_pdf_without_its_end_is_refused() -> None:
    with pytest.raises(LifecycleError):
        checks.check(b"%PDF-1.4\n<html>", "a.pdf", max_bytes=LIMIT)


def test_size_limit_and_empty() -> None:
    data = image_bytes("PNG")
    with pytest.raises(LifecycleError) as big:
        checks.check(data, "a.png", max_bytes=len(data) - 1)
    assert big.value.code == "too_large" and f"at most {len(data) - 1}" in str(big.value)
    assert checks.check(data, "a.png", max_bytes=len(data)).content_type == checks.PNG
    with pytest.raises(LifecycleError) as empty:
        checks.check(b"", "a.png", max_bytes=LIMIT)
    assert empty.value.code == "empty"


def test_a_decompression_bomb_is_refused() -> None:
    # A tiny PNG that claims a huge picture.
    bomb = image_bytes("PNG", (10_000, 6_000))
    assert len(bomb) < LIMIT
    with pytest.raises(LifecycleError) as refused:
        checks.check(bomb, "big.png", max_bytes=LIMIT)
    assert refused.value.code == "file_type"


@pytest.mark.parametrize(
    ("name", "cleaned"),
    [
        ("../../etc/passwd", "passwd.png"),
        ("..\\..\\windows\\win.ini", "win.png"),
        ("/abs/path/photo.jpg", "photo.png"),
        ('a"; filename="evil.html', "a__ filename__evil.png"),
        ("report.html", "report.png"),
        ("\x00\r\nX-Evil: 1.png", "X-Evil_ 1.png"),
        ("", "attachment.png"),
        (None, "attachment.png"),
        ("..", "attachment.png"),
        (".htaccess", "htaccess.png"),
        ("x" * 400 + ".png", "x" * 124 + ".png"),
        ("квитанция.png", "квитанция.png"),
    ],
)
def test_names_are_cleaned(name: str | None, cleaned: str) -> None:
    result = checks.clean_name(name, checks.PNG)
    assert result == cleaned
    assert "/" not in result and "\\" not in result and '"' not in result
    assert len(result) <= checks.MAX_NAME


def test_who_may_read() -> None:
    assert checks.may_read("dispatcher", None, 5)
    assert checks.may_read("operator", None, None)
    assert checks.may_read("crew", 5, 5)
    assert not checks.may_read("crew", 6, 5)
    assert not checks.may_read("crew", None, None)
    assert not checks.may_read("crew", 5, None)
    assert not checks.may_read("nobody", None, 5)
