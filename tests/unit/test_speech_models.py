"""`hotline models install` (issue 16): an archive is verified, unpacked safely and becomes the
language's model; a wrong checksum, a path out of the target, a link, a bomb are refused and
leave nothing behind. Archives are built here: a tiny folder with a Vosk model's layout (this
tests installation, not recognition).
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agi_scripts.speech import configured_model_path
from call_router import speech_models
from call_router.settings import Settings
from call_router.speech_models import (
    KnownModel,
    ModelInstallError,
    install_archive,
    installed_models,
)
from tests.conftest import environment, run_hotline

NAME = "vosk-model-small-en-us-0.15"
LAYOUT = {
    "am/final.mdl": b"acoustic model " * 100,
    "conf/model.conf": b"--sample-frequency=16000\n",
    "conf/mfcc.conf": b"--use-energy=false\n",
    "graph/Gr.fst": b"graph" * 50,
    "README": b"a tiny fake model\n",
}


def make_zip(path: Path, files: dict[str, bytes], *, root: str = NAME) -> str:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zipped:
        for name, data in files.items():
            zipped.writestr(f"{root}/{name}" if root else name, data)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache")


def test_an_archive_with_its_checksum_becomes_the_languages_model(
    tmp_path: Path, settings: Settings
) -> None:
    archive = tmp_path / f"{NAME}.zip"
    digest = make_zip(archive, LAYOUT)
    entry = install_archive(archive, "en", settings.state_dir, sha256=digest.upper())
    folder = settings.state_dir / "models" / NAME
    assert entry.path == str(folder) and entry.sha256 == digest
    assert (folder / "am/final.mdl").read_bytes() == LAYOUT["am/final.mdl"]
    assert entry.bytes == sum(len(data) for data in LAYOUT.values())
    assert installed_models(settings.state_dir)["en"] == entry
    # The recogniser takes it (no HOTLINE_VOSK_MODEL_EN set); a setting still wins.
    assert configured_model_path(settings, "en") == folder
    pinned = settings.model_copy(update={"vosk_model_en": tmp_path / "elsewhere"})
    assert configured_model_path(pinned, "en") == tmp_path / "elsewhere"
    assert configured_model_path(settings, "ru") is None


def test_a_wrong_checksum_is_refused_and_the_installed_model_stays(
    tmp_path: Path, settings: Settings
) -> None:
    good = tmp_path / "good.zip"
    install_archive(good, "en", settings.state_dir, sha256=make_zip(good, LAYOUT))
    tampered = tmp_path / "tampered.zip"
    make_zip(tampered, {**LAYOUT, "am/final.mdl": b"something else"})
    with pytest.raises(ModelInstallError) as refused:
        install_archive(tampered, "en", settings.state_dir, sha256=sha(good))
    assert refused.value.code == "checksum"
    folder = settings.state_dir / "models" / NAME
    assert (folder / "am/final.mdl").read_bytes() == LAYOUT["am/final.mdl"]
    assert sorted(p.name for p in folder.parent.iterdir()) == ["installed.json", NAME]


@pytest.mark.parametrize(
    "evil", ["../escaped.txt", f"{NAME}/../../escaped.txt", "/tmp/escaped.txt", "C:/escaped.txt"]
)
def test_a_member_outside_the_target_is_refused(
    tmp_path: Path, settings: Settings, evil: str
) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for name, data in LAYOUT.items():
            zipped.writestr(f"{NAME}/{name}", data)
        zipped.writestr(evil, b"owned")
    with pytest.raises(ModelInstallError) as refused:
        install_archive(archive, "en", settings.state_dir, sha256=sha(archive))
    assert refused.value.code == "unsafe_path"
    assert not (tmp_path / "escaped.txt").exists()
    assert not (settings.state_dir / "escaped.txt").exists()
    assert installed_models(settings.state_dir) == {}
    assert [p.name for p in (settings.state_dir / "models").iterdir()] == []


def test_a_link_in_a_tar_is_refused(tmp_path: Path, settings: Settings) -> None:
    archive = tmp_path / "links.tar.gz"
    with tarfile.open(archive, "w:gz") as tarred:
        for name, data in LAYOUT.items():
            info = tarfile.TarInfo(f"{NAME}/{name}")
            info.size = len(data)
            tarred.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo(f"{NAME}/conf/passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tarred.addfile(link)
    with pytest.raises(ModelInstallError) as refused:
        install_archive(archive, "en", settings.state_dir, sha256=sha(archive))
    assert refused.value.code == "bad_member"
    assert installed_models(settings.state_dir) == {}


def test_a_tar_gz_model_installs_too(tmp_path: Path, settings: Settings) -> None:
    archive = tmp_path / "model-ru.tar.gz"
    with tarfile.open(archive, "w:gz") as tarred:
        for name, data in LAYOUT.items():  # no top folder: the model at the archive's root
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tarred.addfile(info, io.BytesIO(data))
    entry = install_archive(archive, "ru", settings.state_dir, sha256=sha(archive))
    assert entry.name == "model-ru"
    assert configured_model_path(settings, "ru") == settings.state_dir / "models" / "model-ru"


def test_more_than_the_size_limit_unpacked_is_refused(tmp_path: Path, settings: Settings) -> None:
    """A zip bomb: counted as written, not as the archive claims."""
    archive = tmp_path / "bomb.zip"
    make_zip(archive, {**LAYOUT, "graph/HCLG.fst": bytes(8 * 1024 * 1024)})
    assert archive.stat().st_size < 100_000
    with pytest.raises(ModelInstallError) as refused:
        install_archive(
            archive, "en", settings.state_dir, sha256=sha(archive), max_unpacked=1024 * 1024
        )
    assert refused.value.code == "too_large"
    assert [p.name for p in (settings.state_dir / "models").iterdir()] == []


def test_an_archive_without_a_model_folder_is_refused(tmp_path: Path, settings: Settings) -> None:
    archive = tmp_path / "photos.zip"
    make_zip(archive, {"holiday.jpg": b"jpeg"})
    with pytest.raises(ModelInstallError) as refused:
        install_archive(archive, "en", settings.state_dir, sha256=sha(archive))
    assert refused.value.code == "not_a_model"


# --- the CLI -----------------------------------------------------------------------------------


def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str, str]:
    from hotline import cli_models

    monkeypatch.setattr(cli_models, "get_settings", lambda: settings)
    result = CliRunner().invoke(cli_models.models_app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_install_from_an_archive_says_where_and_models_shows_it(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / f"{NAME}.zip"
    digest = make_zip(archive, LAYOUT)
    code, out, _ = cli(
        settings, monkeypatch, "install", "en", "--from", str(archive), "--sha256", digest, "--json"
    )
    assert code == 0, out
    info = json.loads(out)  # only JSON on stdout
    folder = settings.state_dir / "models" / NAME
    assert info["path"] == str(folder) and info["sha256"] == digest
    assert info["source"] == "archive" and info["overridden_by_setting"] is False
    # The real command line: stdout is only JSON (the recogniser's log lines go to stderr).
    env = {"HOTLINE_STATE_DIR": str(settings.state_dir), "HOTLINE_CACHE_DIR": str(tmp_path)}
    with environment(env):
        out = run_hotline("models", "--json").stdout
    rows = {row["language"]: row for row in json.loads(out)}
    assert rows["en"]["path"] == str(folder) and rows["en"]["source"] == "installed"
    assert rows["en"]["bytes"] == info["bytes"] > 0
    assert rows["en"]["state"].startswith("NOT USABLE")  # a fake model: Vosk cannot load it
    assert rows["ru"]["state"] == "not configured"
    code, out, _ = cli(
        settings, monkeypatch, "install", "en", "--from", str(archive), "--sha256", digest
    )
    assert code == 0 and f"installed {NAME} in {folder}" in out


def test_a_wrong_checksum_from_the_cli_is_a_clear_refusal(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "brought.zip"
    make_zip(archive, LAYOUT)
    wrong = "0" * 64
    code, out, err = cli(
        settings, monkeypatch, "install", "en", "--from", str(archive), "--sha256", wrong, "--json"
    )
    assert code == 2
    assert json.loads(out)["error"] == "checksum"
    assert "checksum mismatch" in err and "nothing was installed" in err
    # The official en archive's pinned digest is used when none is given: refused too.
    code, out, err = cli(settings, monkeypatch, "install", "en", "--from", str(archive))
    assert code == 2 and "checksum mismatch" in err
    # ru has no pinned digest: an admin's archive needs --sha256.
    code, out, err = cli(settings, monkeypatch, "install", "ru", "--from", str(archive))
    assert code == 2 and "--sha256" in err
    code, out, err = cli(settings, monkeypatch, "install", "xx", "--json")
    assert code == 2 and json.loads(out)["error"] == "unknown_language"


@pytest.fixture
def model_site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server standing in for the models site (the test machine is offline)."""
    folder = tmp_path / "site"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/vosk/models", folder
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_install_downloads_the_official_archive_and_checks_the_pinned_digest(
    tmp_path: Path,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    model_site: tuple[str, Path],
) -> None:
    url, folder = model_site
    (folder / "vosk" / "models").mkdir(parents=True)
    digest = make_zip(folder / "vosk" / "models" / f"{NAME}.zip", LAYOUT)
    monkeypatch.setitem(speech_models.KNOWN_MODELS, "en", KnownModel("en", NAME, digest))
    online = settings.model_copy(update={"vosk_models_site": url})
    code, out, _ = cli(online, monkeypatch, "install", "en", "--json")
    assert code == 0, out
    assert json.loads(out)["source"] == "download"
    assert configured_model_path(online, "en") == online.state_dir / "models" / NAME
    # Offline (nothing listens there): a clear message that says what to do instead.
    offline = settings.model_copy(update={"vosk_models_site": "http://127.0.0.1:9/none"})
    code, out, err = cli(offline, monkeypatch, "install", "en", "--json")
    assert code == 1 and json.loads(out)["error"] == "download_failed"
    assert "--from ARCHIVE" in err
