"""Every download ends (issue 31): dataset archives, Google Drive files, the paper's release
models and the baselines' ImageNet weights all go through data_setup.fetch.download_url, with
connect and read timeouts and an overall deadline. A server that accepts the connection and
never answers, one that trickles bytes forever and no network at all each end, within seconds
under the test's small settings, in one line and the documented fallback.

Servers run on 127.0.0.1 only.
"""

import socket
import threading
import time
import traceback
import zipfile

import pytest

from data_setup.__main__ import main as data_cli
from data_setup.fetch import DEADLINE_ENV, TIMEOUT_ENV, FetchError, download_limits, fetch
from tests.helpers import loopback_http

TIMEOUT, DEADLINE = 1, 3  # seconds: what the tests set, so that each case takes seconds
BOUND = 10  # seconds a case may take on a busy 2-core machine (without the fix: minutes, or ∞)


@pytest.fixture
def limits(monkeypatch):
    monkeypatch.setenv(TIMEOUT_ENV, str(TIMEOUT))
    monkeypatch.setenv(DEADLINE_ENV, str(DEADLINE))


@pytest.fixture
def bad_server():
    """start(mode) → base URL of a server on 127.0.0.1 that misbehaves: "silent" accepts the
    connection, reads the request and never answers; "trickle" answers 200 and then sends one
    byte every 50 ms for as long as the client listens."""
    stop, listeners = threading.Event(), []

    def handle(conn, mode):
        with conn:
            try:
                conn.recv(65536)
                if mode == "trickle":
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/zip\r\n\r\n")
                    while not stop.wait(0.05):
                        conn.sendall(b"x")
                else:
                    stop.wait()  # the connection stays open; nothing is ever said
            except OSError:
                pass  # the client gave up

    def start(mode):
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)

        def serve():
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                threading.Thread(target=handle, args=(conn, mode), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}"

    yield start
    stop.set()
    for listener in listeners:
        listener.close()


@pytest.fixture
def refused():
    """A base URL nobody listens on: the "no network" case, answered at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _timed(call):
    started = time.monotonic()
    with pytest.raises(FetchError) as error:
        call()
    return error.value, time.monotonic() - started


def _host(base):
    return base.removeprefix("http://")


def _last_line(err: str) -> str:
    """The one line a command ends with, after the progress bar (tqdm's \r-redrawn line),
    and proof that nothing else, no traceback, was said."""
    assert "Traceback" not in err and err.endswith("\n")
    lines = [line for line in err.split("\n") if line and not line.startswith("\r")]
    assert len(lines) == 1, err
    return lines[0]


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---------------------------------------------------------------- dataset archives
def test_a_server_that_never_answers_stops_at_the_read_timeout(limits, bad_server, tmp_path):
    base = bad_server("silent")
    error, took = _timed(lambda: fetch(tmp_path / "data" / "BUSI", url=f"{base}/busi.zip"))
    assert TIMEOUT <= took < BOUND
    assert str(error) == (
        f"{base}/busi.zip: {_host(base)} stopped answering (nothing for {TIMEOUT} s, "
        f"{TIMEOUT_ENV}); retry later"
    )
    assert error.__suppress_context__  # no chained requests/urllib3 traceback
    assert _leftovers(tmp_path / "data") == []


def test_a_server_that_trickles_forever_stops_at_the_deadline(limits, bad_server, tmp_path):
    base = bad_server("trickle")
    error, took = _timed(lambda: fetch(tmp_path / "data" / "BUSI", url=f"{base}/busi.zip"))
    assert DEADLINE <= took < DEADLINE + BOUND  # each byte came well within the read timeout
    message = str(error)
    assert message.startswith(f"{base}/busi.zip: not complete after {DEADLINE} s (")
    assert message.endswith(f"bytes received; {DEADLINE_ENV} sets this deadline); stopped")
    assert "\n" not in message
    assert _leftovers(tmp_path / "data") == []


def test_the_command_line_says_one_line_offline_stalled_or_trickled(
    limits, bad_server, refused, tmp_path, capsys
):
    silent, trickle = bad_server("silent"), bad_server("trickle")
    for base, says in (
        (refused, "(no internet connection?); connect and retry"),
        (silent, "stopped answering"),
        (trickle, f"not complete after {DEADLINE} s"),
    ):
        started = time.monotonic()
        argv = ["fetch", "BUSI", "--url", f"{base}/busi.zip", "--dest", str(tmp_path / "BUSI")]
        assert data_cli(argv) == 1
        assert time.monotonic() - started < DEADLINE + BOUND
        line = _last_line(capsys.readouterr().err)
        assert line.startswith(f"error: {base}/busi.zip: ") and says in line
    assert _leftovers(tmp_path) == []


def test_download_settings_are_checked(monkeypatch):
    assert download_limits() == (30.0, 7200.0)  # the defaults, when nothing is set
    monkeypatch.setenv(TIMEOUT_ENV, "soon")
    with pytest.raises(FetchError) as error:
        download_limits()
    assert str(error.value) == f"{TIMEOUT_ENV}='soon': expected a number of seconds above 0"
    monkeypatch.setenv(TIMEOUT_ENV, "2.5")
    monkeypatch.setenv(DEADLINE_ENV, "-1")
    with pytest.raises(FetchError, match=f"{DEADLINE_ENV}='-1': expected a number of seconds"):
        download_limits()
    monkeypatch.setenv(DEADLINE_ENV, "60")
    assert download_limits() == (2.5, 60.0)


def test_a_data_zip_url_that_never_answers_is_keyed_within_the_timeout(limits, bad_server, keras):
    """A run's data_zip URL is keyed by its HTTP headers before the download (archive_key)."""
    from data_setup.data_zip import archive_key

    started = time.monotonic()
    archive_key(f"{bad_server('silent')}/busi.zip")
    assert time.monotonic() - started < BOUND  # the download then says what went wrong


# ---------------------------------------------------------------- Google Drive
@pytest.fixture
def drive(monkeypatch):
    """A stand-in for Google Drive on 127.0.0.1: /uc answers with the confirmation page of a
    large file (its download form), /file with the zip itself."""
    import http.server

    payload = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/uc"):
                page = (
                    f'<html><body><form id="download-form" action="{base}/file" method="get">'
                    '<input type="hidden" name="id" value="abc"><input type="hidden" '
                    'name="confirm" value="t"></form></body></html>'
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
                return
            assert self.path == "/file?id=abc&confirm=t"
            self.send_response(200)
            self.send_header("Content-Type", "application/zip")
            self.send_header("Content-Disposition", 'attachment; filename="data.zip"')
            self.send_header("Content-Length", str(len(payload["zip"])))
            self.end_headers()
            self.wfile.write(payload["zip"])

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    import data_setup.fetch as fetch_module

    monkeypatch.setattr(fetch_module, "GDRIVE_URL", base + "/uc?export=download&id={id}")
    yield payload
    server.shutdown()
    server.server_close()


def test_google_drive_goes_through_the_confirmation_page(drive, synth_root, tmp_path):
    archive = tmp_path / "busi.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted((synth_root / "BUSI").rglob("*")):
            handle.write(path, path.relative_to(synth_root / "BUSI"))
    drive["zip"] = archive.read_bytes()
    dest = fetch(tmp_path / "data" / "BUSI", gdrive_id="abc", dataset="BUSI")
    assert (dest / "Dataset_BUSI_with_GT" / "benign").is_dir()


def test_google_drive_that_never_answers_ends_in_one_line(
    limits, bad_server, tmp_path, monkeypatch
):
    import data_setup.fetch as fetch_module

    base = bad_server("silent")
    monkeypatch.setattr(fetch_module, "GDRIVE_URL", base + "/uc?id={id}")
    error, took = _timed(lambda: fetch(tmp_path / "data" / "BUSI", gdrive_id="abc"))
    assert took < BOUND
    assert str(error) == (
        f"{base}/uc?id=abc: {_host(base)} stopped answering (nothing for {TIMEOUT} s, "
        f"{TIMEOUT_ENV}); retry later"
    )
    assert _leftovers(tmp_path / "data") == []


# ---------------------------------------------------------------- --dest in the way
def test_fetch_onto_an_existing_file_is_one_sentence(tmp_path, capsys):
    archive, taken = tmp_path / "busi.zip", tmp_path / "taken"
    archive.write_bytes(b"PK")
    taken.write_text("a file the user keeps")
    for dest, says in (
        (taken, f"{taken}: it is a file, not a folder"),
        (taken / "BUSI", f"{taken / 'BUSI'}: {taken} is a file, not a folder"),
    ):
        assert data_cli(["fetch", "BUSI", "--zip", str(archive), "--dest", str(dest)]) == 1
        assert capsys.readouterr().err == (f"error: {says}; --dest must be a new or empty folder\n")
    assert taken.read_text() == "a file the user keeps"


# ---------------------------------------------------------------- release models
@pytest.fixture
def release(monkeypatch, keras):
    from s3f_kit import releases as s3f_releases

    registered = s3f_releases.Release(
        "Tiny.keras", "s3f", "bilinear", 1, "BRISC2025", (16, 16, 1), 4, 10_000
    )
    monkeypatch.setitem(s3f_releases.RELEASES, "tiny", registered)
    return s3f_releases


def test_pretrained_stalled_or_offline_is_one_line_raised_from_pretrained(
    release, limits, bad_server, refused, tmp_path
):
    cache = tmp_path / "cache"
    save = f", or download it elsewhere and save it as {cache / 'Tiny.keras'}"
    silent = bad_server("silent")
    for base, expected in (
        (
            silent,
            f"{_host(silent)} stopped answering (nothing for {TIMEOUT} s, {TIMEOUT_ENV}); "
            f"retry later{save}",
        ),
        (
            refused,
            f"cannot reach {_host(refused)} (no internet connection?); connect and retry{save}",
        ),
    ):
        error, took = _timed(
            lambda url=base: release.pretrained("tiny", cache_dir=cache, base_url=url)
        )
        assert took < BOUND
        assert str(error) == f"{base}/Tiny.keras: {expected}"
        # The traceback ends in pretrained: the downloader's frames are not shown to a user.
        assert traceback.extract_tb(error.__traceback__)[-1].name == "pretrained"
        assert _leftovers(cache) == []


def test_predict_and_export_say_a_stalled_release_download_in_one_line(
    release, limits, bad_server, tmp_path, monkeypatch, capsys
):
    from s3f_kit.apply import export as s3f_export
    from s3f_kit.apply import predict as s3f_predict

    base = bad_server("silent")
    monkeypatch.setattr(release, "RELEASE_BASE_URL", base)
    monkeypatch.setenv("S3F_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "images").mkdir()
    for name, main, argv in (
        ("s3f-predict", s3f_predict.main, ["tiny", str(tmp_path / "images")]),
        ("s3f-export", s3f_export.main, ["tiny", str(tmp_path / "export")]),
    ):
        started = time.monotonic()
        assert main(argv) == 2
        assert time.monotonic() - started < BOUND
        line = _last_line(capsys.readouterr().err)
        assert line.startswith(f"{name}: error: {base}/Tiny.keras: {_host(base)} stopped answering")
    assert not (tmp_path / "export").exists()


# ---------------------------------------------------------------- ImageNet weights (Keras)
def _in_thread(call, limit):
    """call() in a thread; its result or exception, or "still running" after `limit` s (without
    the fix Keras' own urllib download would wait forever: the test must fail, not hang)."""
    outcome = {}

    def run():
        try:
            outcome["result"] = call()
        except Exception as error:  # noqa: BLE001
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"still running after {limit} s"
    return outcome


def test_keras_get_file_goes_through_the_kit_downloader(limits, bad_server, refused, tmp_path):
    """keras.applications fetch their weights with keras.utils.get_file (urllib, no timeout)."""
    import keras

    from s3f_kit.run.baselines import bounded_keras_downloads

    def get(base):
        with bounded_keras_downloads():
            return keras.utils.get_file("w.h5", f"{base}/w.h5", cache_dir=str(tmp_path))

    for base, says in (
        (bad_server("silent"), "stopped answering"),
        (bad_server("trickle"), f"not complete after {DEADLINE} s"),
        (refused, "cannot reach"),
    ):
        outcome = _in_thread(lambda url=base: get(url), DEADLINE + BOUND)
        error = outcome.get("error")
        assert isinstance(error, FetchError) and str(error).startswith(f"{base}/w.h5: ")
        assert says in str(error) and "\n" not in str(error)
        assert _leftovers(tmp_path / "datasets") == []  # nothing partial in Keras' cache


def test_keras_keeps_its_cache_and_hash_check(tmp_path):
    import hashlib

    import keras

    from s3f_kit.run.baselines import bounded_keras_downloads

    body = b"weights" * 1000
    asked = []

    def respond(path):
        asked.append(path)
        return body

    digest = hashlib.sha256(body).hexdigest()
    with loopback_http(respond) as base, bounded_keras_downloads():
        origin = f"{base}/w.h5"
        path = keras.utils.get_file("w.h5", origin, file_hash=digest, cache_dir=str(tmp_path))
        again = keras.utils.get_file("w.h5", origin, file_hash=digest, cache_dir=str(tmp_path))
        with pytest.raises(ValueError, match="hash does not match"):
            keras.utils.get_file("v.h5", origin, file_hash="0" * 64, cache_dir=str(tmp_path))
    assert path == again and open(path, "rb").read() == body
    assert len(asked) == 2  # the second w.h5 came from Keras' cache, v.h5 was downloaded
    from keras.src.utils import file_utils

    assert file_utils.urlretrieve.__module__ == "urllib.request"  # Keras' own, put back


def test_a_baseline_behind_a_silent_proxy_starts_from_random_weights(
    limits, bad_server, tmp_path, monkeypatch
):
    """The campaign's case: the real keras.applications constructor, its ImageNet host behind
    a connection that never answers (waited over 240 s): random weights, said in one line."""
    from keras.src.backend import config as keras_config

    from s3f_kit.run import baselines

    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path / "keras"))  # nothing cached
    proxy = bad_server("silent")
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(variable, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    said = []
    outcome = _in_thread(
        lambda: baselines.build_baseline("EfficientNetV2B0", (32, 32, 1), 3, log=said.append),
        DEADLINE + BOUND + 30,  # two small model builds on a busy CPU
    )
    model, used = outcome["result"]
    assert used == "random" and model.output.shape[-1] == 3
    assert len(said) == 1 and "\n" not in said[0]
    assert said[0].startswith("EfficientNetV2B0: ImageNet weights could not be fetched (https://")
    assert "storage.googleapis.com" in said[0]
    assert said[0].endswith(
        "training from random initialization (recorded as weights_used='random')"
    )


def test_a_link_planted_at_the_download_target_is_refused_and_its_file_kept(
    limits, bad_server, tmp_path
):
    """The download opens its file without following a link (data_setup.files.open_regular):
    a planted link at the target would otherwise receive the bytes."""
    from data_setup.fetch import download_url
    from data_setup.files import UnsafeFileError

    victim, target = tmp_path / "thesis.tex", tmp_path / "busi.zip"
    victim.write_text("keep me")
    target.symlink_to(victim)
    with pytest.raises(UnsafeFileError) as refused:
        download_url(f"{bad_server('trickle')}/busi.zip", target, max_bytes=1000)
    assert str(target) in str(refused.value) and "symbolic link" in str(refused.value)
    assert victim.read_text() == "keep me"
