"""`hotline models [--json]` and `hotline models install ru|en [--from ARCHIVE] [--sha256 HEX]`.

`install` downloads the official small Vosk model (or takes an archive an admin brought),
verifies its sha256, unpacks it safely (call_router/speech_models.py) and records it, so the
recogniser uses it from the next start of the FastAGI server on; it says where it put it.
"""

from __future__ import annotations

import json
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from call_router.settings import Settings, get_settings
from call_router.speech_models import (
    KNOWN_MODELS,
    MAX_ARCHIVE_BYTES,
    InstalledModel,
    KnownModel,
    ModelInstallError,
    clean_sha256,
    folder_bytes,
    install_archive,
    installed_models,
    models_dir,
)
from hotline.cli_support import JsonOpt

models_app = typer.Typer(
    help="Speech models (Vosk): where they are, their size and state; install one.",
    invoke_without_command=True,
)
# Languages `hotline models` reports (ko: the test language, from its PyPI package).
LANGUAGES = ("ru", "en", "ko")
DOWNLOAD_TIMEOUT = 60


@models_app.callback()
def models(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Where the speech models are, their size and whether they load."""
    if ctx.invoked_subcommand is not None:
        return
    rows = model_rows(get_settings())
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    for row in rows:
        size = f"{row['bytes'] / 1e6:.0f} MB" if row["bytes"] is not None else "-"
        typer.echo(f"{row['language']}: {row['path'] or '-'}  {size}  [{row['state']}]")
        if row["state"] != "ok" and row["language"] in KNOWN_MODELS:
            typer.echo(f"    hotline models install {row['language']} [--from ARCHIVE]")
    if any(row["state"] != "ok" for row in rows):
        typer.echo("Languages without a model use the keypad menu.")


def model_rows(settings: Settings) -> list[dict[str, Any]]:
    """Per language: path, where it comes from, size on disk and whether it loads."""
    from agi_scripts.speech import Recogniser, configured_model_path

    installed = installed_models(settings.state_dir)
    recogniser = Recogniser(settings, max_workers=1)
    rows: list[dict[str, Any]] = []
    try:
        for language in LANGUAGES:
            path = configured_model_path(settings, language)
            if getattr(settings, f"vosk_model_{language}", None):
                source: str | None = "setting"
            elif language in installed and path is not None:
                source = "installed"
            else:
                source = "package" if path is not None else None
            if path is None:
                state = "not configured"
            elif recogniser.available(language):
                state = "ok"
            else:
                state = f"NOT USABLE: {recogniser.error(language)}"
            rows.append(
                {
                    "language": language,
                    "path": str(path) if path is not None else None,
                    "source": source,
                    "name": path.name if path is not None else None,
                    "bytes": folder_bytes(path) if path is not None and path.is_dir() else None,
                    "state": state,
                    "sha256": installed[language].sha256 if source == "installed" else None,
                }
            )
    finally:
        recogniser.close()
    return rows


@models_app.command("install")
def install(
    language: Annotated[str, typer.Argument(help="ru or en")],
    archive: Annotated[
        Path | None,
        typer.Option(
            "--from", help="A model archive (zip or tar) to install instead of downloading."
        ),
    ] = None,
    sha256: Annotated[
        str | None,
        typer.Option("--sha256", help="The archive's sha256 (needed for an archive of your own)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Install the small Vosk model for a language: downloaded, or from --from ARCHIVE."""
    settings = get_settings()
    known = KNOWN_MODELS.get(language)
    try:
        if known is None:
            raise ModelInstallError(
                "unknown_language",
                f"no model known for {language!r}: one of {', '.join(KNOWN_MODELS)}",
            )
        expected = clean_sha256(sha256) if sha256 else known.sha256
        if expected is None:
            raise ModelInstallError(
                "no_checksum",
                f"no sha256 is pinned for {known.name}: check the archive's digest and pass "
                "--sha256 HEX",
            )
        if archive is not None:
            entry = install_archive(archive, language, settings.state_dir, sha256=expected)
        else:
            entry = _download_and_install(known, settings, expected)
    except ModelInstallError as exc:
        _fail(exc.code, str(exc), as_json, exit_code=2)
    except DownloadError as exc:
        _fail("download_failed", str(exc), as_json, exit_code=1)
    overridden = bool(getattr(settings, f"vosk_model_{language}", None))
    info = {
        "language": entry.language,
        "name": entry.name,
        "path": entry.path,
        "sha256": entry.sha256,
        "bytes": entry.bytes,
        "source": entry.source,
        "installed_at": entry.installed_at,
        "overridden_by_setting": overridden,
    }
    if as_json:
        typer.echo(json.dumps(info, ensure_ascii=False))
        return
    typer.echo(f"{language}: installed {entry.name} in {entry.path} ({entry.bytes / 1e6:.0f} MB)")
    typer.echo("    used by the recogniser from the next start of the FastAGI server")
    if overridden:
        typer.echo(
            f"    note: HOTLINE_VOSK_MODEL_{language.upper()} is set and still wins; unset it"
        )


class DownloadError(RuntimeError):
    """The official archive could not be fetched (offline, refused, cut short)."""


def _download_and_install(known: KnownModel, settings: Settings, expected: str) -> InstalledModel:
    folder = models_dir(settings.state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=folder) as scratch:
        target = Path(scratch) / f"{known.name}.zip"
        _download(known.url(settings.vosk_models_site), target)
        return install_archive(
            target, known.language, settings.state_dir, sha256=expected, source="download"
        )


def _download(url: str, target: Path) -> None:
    try:
        with (
            urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response,
            target.open("wb") as out,
        ):  # noqa: S310 (a fixed https URL)
            total = 0
            while chunk := response.read(1024 * 1024):
                total += len(chunk)
                if total > MAX_ARCHIVE_BYTES:
                    raise DownloadError(f"{url} is larger than {MAX_ARCHIVE_BYTES} bytes")
                out.write(chunk)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DownloadError(
            f"cannot download {url}: {exc}. Offline? Bring the archive and run "
            "`hotline models install LANG --from ARCHIVE`"
        ) from exc


def _fail(code: str, detail: str, as_json: bool, *, exit_code: int) -> NoReturn:
    if as_json:
        typer.echo(json.dumps({"error": code, "detail": detail}, ensure_ascii=False))
    typer.secho(detail, err=True, fg="red")
    raise typer.Exit(exit_code)
