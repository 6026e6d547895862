"""Vosk speech models installed by `hotline models install` (issue 16): verified, unpacked
safely, and remembered, so `hotline models` shows them and the recogniser uses them.

An archive is trusted only after its sha256 matches: the pinned digest of a known official
model, or one the admin gives (`--sha256`) for an archive of their own. Unpacking refuses any
member that would land outside the target (absolute paths, `..`, links, devices), more members
or more bytes than the limits (counted as written, not as the archive claims), and anything
that is not one Vosk model folder (am/ and conf/ inside). It unpacks next to the final folder
and renames into place, so a failed install leaves the previous model untouched.

Installed models live in `<state dir>/models/<name>/`; `installed.json` there records which
folder serves which language. A HOTLINE_VOSK_MODEL_<LANG> setting still wins over it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO

# The folders every Vosk model has (agi_scripts/speech.py MODEL_MARKERS says the same).
MODEL_MARKERS = ("am", "conf")
STATE_FILE = "installed.json"
# The official models' site (settings.vosk_models_site may name a mirror).
MODELS_SITE = "https://alphacephei.com/vosk/models"
# A small model is 40-90 MB; a big one 1-2 GB zipped. Beyond these something is wrong.
MAX_ARCHIVE_BYTES = 3 * 1024**3
MAX_UNPACKED_BYTES = 6 * 1024**3
MAX_MEMBERS = 20_000
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class KnownModel:
    """An official small model: the folder name inside its zip is `name`."""

    language: str
    name: str
    sha256: str | None  # None: no digest pinned yet; a download then needs --sha256
    size: int | None = None

    def url(self, site: str = MODELS_SITE) -> str:
        return f"{site.rstrip('/')}/{self.name}.zip"


# The small models for a telephone line. en: the digest of the published zip (41,205,931
# bytes), the same in several independent projects that pin it. ru: none pinned (no published
# digest to check against): `hotline models install ru` needs --sha256 or --from.
KNOWN_MODELS: dict[str, KnownModel] = {
    "ru": KnownModel("ru", "vosk-model-small-ru-0.22", None),
    "en": KnownModel(
        "en",
        "vosk-model-small-en-us-0.15",
        "30f26242c4eb449f948e42cb302dd7a686cb29a3423a8367f99ff41780942498",
        41_205_931,
    ),
}


class ModelInstallError(RuntimeError):
    """The archive was refused or could not be installed; `code` is stable for --json."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class InstalledModel:
    language: str
    name: str
    path: str
    sha256: str
    source: str  # "download" or "archive"
    installed_at: str
    bytes: int


def models_dir(state_dir: Path) -> Path:
    return state_dir / "models"


def installed_models(state_dir: Path) -> dict[str, InstalledModel]:
    """What `hotline models install` put in place, per language ({} if nothing / unreadable)."""
    path = models_dir(state_dir) / STATE_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    found: dict[str, InstalledModel] = {}
    if isinstance(doc, dict):
        for language, entry in doc.items():
            try:
                found[language] = InstalledModel(**entry)
            except TypeError:
                continue  # a hand-edited entry we cannot read is ignored, not fatal
    return found


def installed_path(state_dir: Path, language: str) -> Path | None:
    entry = installed_models(state_dir).get(language)
    return Path(entry.path) if entry is not None else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def folder_bytes(path: Path) -> int:
    """Bytes of the regular files below `path` (symlinks not followed)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            info = (Path(root) / name).lstat()
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total


def clean_sha256(value: str) -> str:
    digest = value.strip().lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ModelInstallError("bad_sha256", f"not a sha256 (64 hex digits): {value!r}")
    return digest


def install_archive(
    archive: Path,
    language: str,
    state_dir: Path,
    *,
    sha256: str,
    source: str = "archive",
    max_unpacked: int = MAX_UNPACKED_BYTES,
    max_members: int = MAX_MEMBERS,
    now: datetime | None = None,
) -> InstalledModel:
    """Verify `archive` against `sha256`, unpack it safely and make it `language`'s model."""
    expected = clean_sha256(sha256)
    if not archive.is_file():
        raise ModelInstallError("not_found", f"no such archive: {archive}")
    if archive.stat().st_size > MAX_ARCHIVE_BYTES:
        raise ModelInstallError("too_large", f"{archive} is larger than {MAX_ARCHIVE_BYTES} bytes")
    actual = sha256_of(archive)
    if actual != expected:
        raise ModelInstallError(
            "checksum",
            f"checksum mismatch for {archive.name}: sha256 {actual}, expected {expected}; "
            "nothing was installed",
        )
    target_root = models_dir(state_dir)
    target_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target_root))
    try:
        try:
            _unpack(archive, staging, max_unpacked=max_unpacked, max_members=max_members)
        except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
            raise ModelInstallError(
                "unpack_failed", f"cannot unpack {archive.name}: {exc}"
            ) from exc
        model = _model_root(staging)
        name = model.name if model != staging else _stem(archive)
        final = target_root / _safe_name(name)
        _replace(model, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    entry = InstalledModel(
        language=language,
        name=final.name,
        path=str(final),
        sha256=actual,
        source=source,
        installed_at=(now or datetime.now(UTC)).isoformat(timespec="seconds"),
        bytes=folder_bytes(final),
    )
    _remember(state_dir, entry)
    return entry


# --- unpacking ------------------------------------------------------------------------------


def _unpack(archive: Path, into: Path, *, max_unpacked: int, max_members: int) -> None:
    budget = _Budget(max_unpacked, max_members)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zipped:
            for info in zipped.infolist():
                kind = _zip_kind(info)
                budget.member(info.filename)
                target = _inside(into, info.filename)
                if kind == "dir":
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                with zipped.open(info) as source:
                    _write(source, target, budget)
        return
    try:
        tarred = tarfile.open(archive, mode="r:*")  # noqa: SIM115 (closed below)
    except tarfile.TarError as exc:
        raise ModelInstallError("not_an_archive", f"{archive.name} is not a zip or tar") from exc
    with tarred:
        for member in tarred:
            budget.member(member.name)
            target = _inside(into, member.name)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                stream = tarred.extractfile(member)
                if stream is None:
                    raise ModelInstallError("bad_member", f"cannot read {member.name!r}")
                with stream:
                    _write(stream, target, budget)
            else:
                raise ModelInstallError(
                    "bad_member", f"refusing {member.name!r}: links and devices are not allowed"
                )


class _Budget:
    def __init__(self, max_bytes: int, max_members: int) -> None:
        self.max_bytes, self.max_members = max_bytes, max_members
        self.bytes = self.members = 0

    def member(self, name: str) -> None:
        self.members += 1
        if self.members > self.max_members:
            raise ModelInstallError("too_many_files", f"more than {self.max_members} files")

    def add(self, count: int) -> None:
        self.bytes += count
        if self.bytes > self.max_bytes:
            raise ModelInstallError(
                "too_large", f"unpacks to more than {self.max_bytes} bytes; refused"
            )


def _zip_kind(info: zipfile.ZipInfo) -> str:
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no Unix type recorded (a plain file)
    if info.is_dir():
        return "dir"
    if kind and kind != stat.S_IFREG:
        raise ModelInstallError(
            "bad_member", f"refusing {info.filename!r}: links and devices are not allowed"
        )
    return "file"


def _inside(root: Path, name: str) -> Path:
    """Where a member goes; refuses anything that would land outside `root`."""
    member = PurePosixPath(name.replace("\\", "/"))
    if (
        not name
        or member.is_absolute()
        or ".." in member.parts
        or (member.parts and ":" in member.parts[0])
        or "\x00" in name
    ):
        raise ModelInstallError("unsafe_path", f"refusing {name!r}: outside the target folder")
    target = (root / Path(*member.parts)) if member.parts else root
    if not target.resolve().is_relative_to(root.resolve()):
        raise ModelInstallError("unsafe_path", f"refusing {name!r}: outside the target folder")
    return target


def _write(source: IO[bytes], target: Path, budget: _Budget) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("xb") as out:
        while chunk := source.read(_CHUNK):
            budget.add(len(chunk))
            out.write(chunk)


def _model_root(staging: Path) -> Path:
    """The unpacked model folder: the archive's root, or its only top-level folder."""
    if _is_model(staging):
        return staging
    entries = [p for p in staging.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir() and _is_model(entries[0]):
        return entries[0]
    raise ModelInstallError(
        "not_a_model",
        f"the archive holds no Vosk model folder (expected {' and '.join(MODEL_MARKERS)}/ "
        "inside, at the top or in one folder)",
    )


def _is_model(folder: Path) -> bool:
    return all((folder / marker).is_dir() for marker in MODEL_MARKERS)


def _stem(archive: Path) -> str:
    name = archive.name
    for suffix in (".zip", ".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".tar"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return archive.stem


def _safe_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in name).strip(".")
    return cleaned or "model"


def _replace(model: Path, final: Path) -> None:
    """Move the unpacked model to `final`; an older copy there goes only once it is in."""
    old: Path | None = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        final.rename(old)
    try:
        model.rename(final)
    except OSError:
        if old is not None:
            old.rename(final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _remember(state_dir: Path, entry: InstalledModel) -> None:
    folder = models_dir(state_dir)
    doc = {lang: asdict(model) for lang, model in installed_models(state_dir).items()}
    doc[entry.language] = asdict(entry)
    fd, temporary = tempfile.mkstemp(prefix=f".{STATE_FILE}.", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(doc, out, indent=2, sort_keys=True)
    os.replace(temporary, folder / STATE_FILE)
