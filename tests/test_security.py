"""Untrusted files never run code, and every size they can make the kit read or write is bounded.

A hostile `.keras` file (an extra "layer" that is `os.system`, which Keras 3.8 executed on load)
goes through every loader of the kit; downloads and archives meet their limits; a data_zip is
reused only for the same content. Servers run on 127.0.0.1 only.
"""

import errno
import http.server
import json
import struct
import tempfile
import threading
import zipfile
from collections import namedtuple
from pathlib import Path

import pytest

from data_setup.fetch import FetchError, fetch
from s3f_kit import modelfile as s3f_modelfile

REFUSAL = (
    "config.json entry config.layers[{index}] (module 'os', class_name 'function', config "
    "'system', name 'evil'): not from Keras or the kit. A model file may hold only Keras layers "
    "and the kit's classes: anything else could run code when loaded"
)


def _rewrite_config(path, change):
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    result = change(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return result


def make_hostile(source: Path, target: Path, marker: Path) -> str:
    """A copy of a kit model whose config adds the `os.system` "layer"; returns the refusal."""
    target.write_bytes(source.read_bytes())

    def add_layer(config):
        layers = config["config"]["layers"]
        layers.append(
            {
                "module": "os",
                "class_name": "function",
                "config": "system",
                "registered_name": None,
                "name": "evil",
                "inbound_nodes": [{"args": [f"touch {marker}"], "kwargs": {}}],
            }
        )
        return len(layers) - 1

    return REFUSAL.format(index=_rewrite_config(target, add_layer))


@pytest.fixture(scope="session")
def kit_model_file(tmp_path_factory, keras):
    import s3f_common

    model = s3f_common.build_model("s3f", (16, 16, 1), 4, "bilinear", 1, bn_momentum=0.99)
    path = tmp_path_factory.mktemp("kit-model") / "model.keras"
    model.save(path)
    return path, model.count_params()


@pytest.fixture
def hostile(kit_model_file, tmp_path):
    path, marker = tmp_path / "shared" / "model.keras", tmp_path / "PWNED"
    path.parent.mkdir()
    refusal = make_hostile(kit_model_file[0], path, marker)
    yield path, marker, refusal
    assert not marker.exists(), "the hostile model's command ran"


# ---------------------------------------------------------------- every loader refuses it
def test_load_model_refuses_the_hostile_file_naming_it(hostile):
    import s3f_common

    path, _, refusal = hostile
    with pytest.raises(s3f_modelfile.UnsafeModelFile) as error:
        s3f_common.load_model(path)
    assert str(error.value) == f"{path}: refused to load: {refusal}"


def test_s3f_predict_and_s3f_export_refuse_it(hostile, tmp_path, capsys):
    from s3f_kit.apply import export as s3f_export
    from s3f_kit.apply import predict as s3f_predict

    path, _, refusal = hostile
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    assert s3f_predict.main([str(path.parent), str(image), "--out", str(tmp_path / "p.csv")]) == 2
    assert capsys.readouterr().err == f"s3f-predict: error: {path}: refused to load: {refusal}\n"
    assert s3f_export.main([str(path), str(tmp_path / "export")]) == 2
    assert capsys.readouterr().err == f"s3f-export: error: {path}: refused to load: {refusal}\n"
    assert not (tmp_path / "export").exists() and not (tmp_path / "p.csv").exists()


def test_the_explainability_loader_refuses_it(hostile):
    from s3f_kit.apply import explain as s3f_explain

    path, _, refusal = hostile
    with pytest.raises(s3f_modelfile.UnsafeModelFile, match="refused to load") as error:
        s3f_explain.load_for_explanation(model_path=str(path), dataset="BUSI")
    assert str(error.value) == f"{path}: refused to load: {refusal}"


# ---------------------------------------------------------------- pretrained (local server)
@pytest.fixture
def server():
    """Serve `routes` on 127.0.0.1: name → bytes, or → None for an endless body (no length),
    or → (bytes, announced length)."""
    routes = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            name = self.path.lstrip("/")
            if name not in routes:
                self.send_error(404)
                return
            body = routes[name]
            self.send_response(200)
            try:
                if body is None:  # endless: until the client hangs up
                    self.end_headers()
                    while True:
                        self.wfile.write(b"\0" * 65536)
                body, announced = body if isinstance(body, tuple) else (body, len(body))
                self.send_header("Content-Length", str(announced))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", routes
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def tiny_release(kit_model_file, monkeypatch):
    from s3f_kit import releases as s3f_releases

    release = s3f_releases.Release(
        "Tiny.keras", "s3f", "bilinear", 1, "BRISC2025", (16, 16, 1), 4, kit_model_file[1]
    )
    monkeypatch.setitem(s3f_releases.RELEASES, "tiny", release)
    return release


def test_pretrained_refuses_a_hostile_download_before_loading_it(
    hostile, tiny_release, server, tmp_path
):
    from s3f_kit import releases as s3f_releases

    path, _, refusal = hostile
    base, routes = server
    routes["Tiny.keras"] = path.read_bytes()
    cache = tmp_path / "cache"
    with pytest.raises(s3f_modelfile.UnsafeModelFile) as error:
        s3f_releases.pretrained("tiny", cache_dir=cache, base_url=base)
    assert str(error.value) == f"{base}/Tiny.keras: refused to load: {refusal}"
    assert list(cache.iterdir()) == []  # nothing unverified stays, no SHA-256 recorded


def test_pretrained_refuses_a_hostile_cached_file(hostile, tiny_release, tmp_path):
    from s3f_kit import releases as s3f_releases

    path, _, refusal = hostile
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "Tiny.keras").write_bytes(path.read_bytes())
    with pytest.raises(s3f_modelfile.UnsafeModelFile) as error:
        s3f_releases.pretrained("tiny", cache_dir=cache)
    assert str(error.value) == f"{cache / 'Tiny.keras'}: refused to load: {refusal}"


def test_pretrained_stops_an_endless_or_oversized_download(tiny_release, server, tmp_path):
    from s3f_kit import releases as s3f_releases

    base, routes = server
    low, high = tiny_release.size_range()
    note = f"(the most a file of {tiny_release.params:,} parameters takes)"
    cache = tmp_path / "cache"
    routes["Tiny.keras"] = None
    with pytest.raises(FetchError) as error:
        s3f_releases.pretrained("tiny", cache_dir=cache, base_url=base)
    assert str(error.value) == f"{base}/Tiny.keras: sent more than {high:,} bytes {note}; stopped"
    routes["Tiny.keras"] = (b"x", high + 1)
    with pytest.raises(FetchError) as error:
        s3f_releases.pretrained("tiny", cache_dir=cache, base_url=base)
    assert str(error.value) == (
        f"{base}/Tiny.keras: the server announces {high + 1:,} bytes, more than {high:,} bytes "
        f"{note}"
    )
    routes["Tiny.keras"] = b"x" * 1000
    with pytest.raises(ValueError) as error:
        s3f_releases.pretrained("tiny", cache_dir=cache, base_url=base)
    assert str(error.value) == (
        f"{base}/Tiny.keras: 1,000 bytes, but a model of {tiny_release.params:,} parameters "
        f"takes {low:,}–{high:,}: not the release file (truncated or replaced?)"
    )
    assert list(cache.iterdir()) == []


def test_pretrained_without_a_connection_is_one_line(tiny_release, tmp_path):
    import socket

    from s3f_kit import releases as s3f_releases

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base, cache = f"http://127.0.0.1:{port}", tmp_path / "cache"
    with pytest.raises(FetchError) as error:
        s3f_releases.pretrained("tiny", cache_dir=cache, base_url=base)
    assert str(error.value) == (
        f"{base}/Tiny.keras: cannot reach 127.0.0.1:{port} (no internet connection?); connect "
        f"and retry, or download it elsewhere and save it as {cache / 'Tiny.keras'}"
    )
    assert error.value.__suppress_context__  # no chained requests/urllib3 traceback
    assert list(cache.iterdir()) == []


# ---------------------------------------------------------------- what the check allows
def _archive(path, layers, members=None):
    config = {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "config": {"name": "m", "layers": layers},
        "registered_name": "Functional",
    }
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        for name, data in (members or {}).items():
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize(
    "entry,reason",
    [
        (
            {
                "module": "keras.layers",
                "class_name": "Lambda",
                "name": "lam",
                "config": {"function": {"class_name": "__lambda__", "config": {"code": "x"}}},
            },
            "(module 'keras.layers', class_name 'Lambda', name 'lam'): not one of the Keras "
            "classes the kit allows in a model file (and 1 more)",
        ),
        (
            {
                "module": "keras.layers",
                "class_name": "TFSMLayer",
                "config": {"name": "sm", "filepath": "/tmp/attacker_savedmodel"},
            },
            "(module 'keras.layers', class_name 'TFSMLayer', name 'sm'): not one of the Keras "
            "classes the kit allows in a model file",
        ),
        (
            {"module": "keras.utils", "class_name": "function", "config": "get_file"},
            "(module 'keras.utils', class_name 'function', config 'get_file'): a function that "
            "is not a Keras activation, loss or metric",
        ),
        (
            {
                "module": "__main__",
                "class_name": "SpectralFilterLayer",
                "registered_name": "evil>SpectralFilterLayer",
                "config": {"name": "f"},
            },
            "(module '__main__', class_name 'SpectralFilterLayer', name 'f'): a kit class with a "
            "foreign registered_name 'evil>SpectralFilterLayer'",
        ),
    ],
)
def test_check_names_the_offending_entry(entry, reason, tmp_path, keras):
    path = _archive(tmp_path / "m.keras", [entry])
    with pytest.raises(s3f_modelfile.UnsafeModelFile) as error:
        s3f_modelfile.check_model_file(path)
    assert str(error.value) == (
        f"{path}: refused to load: config.json entry config.layers[0] {reason}. A model file may "
        "hold only Keras layers and the kit's classes: anything else could run code when loaded"
    )


def test_check_allows_what_keras_saves_for_kit_and_paper_models(kit_model_file, tmp_path, keras):
    import s3f_common
    from tests import paper_format

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("sgd", keras.losses.sparse_categorical_crossentropy, metrics=["accuracy"])
    model.save(tmp_path / "function_loss.keras")
    s3f_modelfile.check_model_file(tmp_path / "function_loss.keras")
    s3f_modelfile.check_model_file(kit_model_file[0])
    paper = s3f_common.build_model("s3f", (16, 16, 1), 4, "bilinear", 1, bn_momentum=0.99)
    for module in ("__main__", "ipykernel_notebook_cell"):
        paper_format.save_in_paper_format(paper, tmp_path / "paper.keras", module)
        s3f_modelfile.check_model_file(tmp_path / "paper.keras")


def test_archive_members_and_sizes_are_bounded(tmp_path, monkeypatch, keras):
    path = _archive(tmp_path / "a.keras", [], {"assets/../../evil.py": b"x"})
    with pytest.raises(s3f_modelfile.UnsafeModelFile) as error:
        s3f_modelfile.check_model_file(path)
    assert str(error.value) == (
        f"{path}: refused to load: unexpected archive member 'assets/../../evil.py' (a kit or "
        "paper model holds only config.json, metadata.json, model.weights.h5)"
    )
    path = _archive(tmp_path / "b.keras", [], {"model.weights.h5": b"\0" * 5000})
    size = zipfile.ZipFile(path).getinfo("config.json").file_size
    monkeypatch.setattr(s3f_modelfile, "MAX_UNPACKED_BYTES", 4096)
    with pytest.raises(s3f_modelfile.UnsafeModelFile) as error:
        s3f_modelfile.check_model_file(path)
    assert str(error.value) == (
        f"{path}: refused to load: its members unpack to {size + 5000:,} bytes (at most 4,096, "
        "twice the largest model the kit makes)"
    )
    monkeypatch.undo()
    monkeypatch.setattr(s3f_modelfile, "MAX_CONFIG_BYTES", 100)
    with pytest.raises(s3f_modelfile.UnsafeModelFile) as error:
        s3f_modelfile.check_model_file(path)
    assert str(error.value) == (
        f"{path}: refused to load: config.json unpacks to {size:,} bytes (at most 100)"
    )


def test_the_unpacking_bound_is_the_largest_kit_model_with_its_optimizer_state_twice():
    from s3f_kit.experiments import EXPERIMENTS

    busi = EXPERIMENTS["S3F_Concat_BUSI"]  # the largest model the kit makes, ~1.66 GB with Adam
    assert busi.params == max(e.params for e in EXPERIMENTS.values())
    assert s3f_modelfile.MAX_UNPACKED_BYTES == 2 * (4 * busi.params) * 3


def _declare_size(path: Path, name: str, size: int) -> None:
    """Make `path`'s member `name` claim to unpack to `size` bytes (its local and central
    headers), storing what it stored before: a zip whose declared size lies."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        offset = archive.getinfo(name).header_offset
    struct.pack_into("<I", data, offset + 22, size)  # local file header: uncompressed size
    central = data.rindex(b"PK\x01\x02", 0, data.rindex(name.encode()))
    struct.pack_into("<I", data, central + 24, size)  # central directory: uncompressed size
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("bomb", ["deflated zeros", "declared size"])
def test_a_model_file_bomb_is_refused_before_anything_is_unpacked(
    bomb, kit_model_file, tmp_path, monkeypatch
):
    """A ~100 kB file whose weights unpack to 64 MiB, saved by an older Keras (the kit then
    rebuilds it into the temp folder), or whose weights claim 4 GB: refused, naming the file,
    before Keras or the kit unpacks anything (the temp folders are measured on cleanup)."""
    import s3f_common

    with zipfile.ZipFile(kit_model_file[0]) as archive:
        config = archive.read("config.json")
        metadata = json.loads(archive.read("metadata.json"))
    metadata["keras_version"] = "3.0.0"  # another Keras: the kit's rebuild path unpacks too
    path = tmp_path / "bomb.keras"
    weights = b"\0" * (64 << 20) if bomb == "deflated zeros" else b"\0" * 4096
    compression = zipfile.ZIP_DEFLATED if bomb == "deflated zeros" else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", config)
        archive.writestr("metadata.json", json.dumps(metadata))
        archive.writestr("model.weights.h5", weights, compression)
    if bomb == "declared size":
        _declare_size(path, "model.weights.h5", 0xFFFF_FFF0)
    info = zipfile.ZipFile(path).getinfo("model.weights.h5")

    written, cleanup = [], tempfile.TemporaryDirectory.cleanup

    def measured_cleanup(self):
        written.append(sum(f.stat().st_size for f in Path(self.name).rglob("*") if f.is_file()))
        cleanup(self)

    monkeypatch.setattr(tempfile.TemporaryDirectory, "cleanup", measured_cleanup)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))
    (tmp_path / "temp").mkdir()
    with pytest.raises(s3f_modelfile.UnsafeModelFile) as error:
        s3f_common.load_model(path)
    assert str(error.value) == (
        f"{path}: refused to load: model.weights.h5 unpacks to {info.file_size:,} bytes from "
        f"{info.compress_size:,} stored (over {s3f_modelfile.MAX_EXPANSION}×; Keras stores "
        "members uncompressed): a decompression bomb"
    )
    assert sum(written) == 0 and not any((tmp_path / "temp").iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.keras", "temp"]


def test_legacy_hdf5_model_files_are_refused(tmp_path, keras):
    import s3f_common

    path = tmp_path / "old_model.h5"
    path.write_bytes(s3f_modelfile.HDF5_SIGNATURE + b"\0" * 100)
    with pytest.raises(s3f_modelfile.UnsafeModelFile) as error:
        s3f_common.load_model(path)
    assert str(error.value) == (
        f"{path}: refused to load: a legacy HDF5 model file; Keras ignores safe mode for these "
        "and would run any code stored in them. Re-save the model as .keras where you trust it"
    )


# ---------------------------------------------------------------- Keras' own guards
# requirements.txt pins Keras 3.12.4 for these fixes, besides the kit's check of every model
# file: each test hands Keras the hostile input its guard must refuse (both version sets).
def test_keras_refuses_asset_paths_outside_the_asset_folder(tmp_path, keras):
    """CVE-2026-12479: saving_lib.DiskIOStore._full_path (asset paths a model names)."""
    from keras.src.saving import saving_lib

    secret = tmp_path / "secret.txt"
    secret.write_text("outside the asset folder")
    with zipfile.ZipFile(tmp_path / "m.keras", "w") as archive:
        archive.writestr("assets/vocabulary/tokens.txt", "a b c")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        store = saving_lib.DiskIOStore("assets", archive=archive, mode="r")
        try:
            assert Path(store.get("vocabulary"), "tokens.txt").read_text() == "a b c"
            for path in ("../../../../" + str(secret), str(secret), "vocabulary/../../.."):
                with pytest.raises(ValueError, match="escapes the asset directory"):
                    store.get(path)
                with pytest.raises(ValueError, match="escapes the asset directory"):
                    store.make(path)
        finally:
            store.close()
    assert secret.read_text() == "outside the asset folder"


def test_keras_refuses_a_lambda_or_a_torch_module_with_safe_mode_unset(
    tmp_path, monkeypatch, keras
):
    """CVE-2026-12481: Lambda.from_config and TorchModuleWrapper.from_config called directly
    (no safe_mode argument, no SafeModeScope) refuse marshalled code and pickles."""
    import base64
    import pickle
    import sys
    import types

    from keras.src.saving import serialization_lib
    from keras.src.utils.torch_utils import TorchModuleWrapper

    assert serialization_lib.in_safe_mode() is None  # the unset scope the advisory is about
    marker = tmp_path / "PWNED"
    layer = keras.layers.Lambda(lambda x, m=str(marker): open(m, "w") and x)
    config = layer.get_config()
    assert config["function"]["class_name"] == "__lambda__"
    with pytest.raises(ValueError, match="deserialization of a `Lambda` layer"):
        keras.layers.Lambda.from_config(config)

    loads = []  # torch may be absent: a stand-in records whether Keras would unpickle
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(load=loads.append))
    pickled = base64.b64encode(pickle.dumps(("touch", str(marker)))).decode("ascii")
    with pytest.raises(ValueError, match="deserialization of a `torch.nn.Module`"):
        TorchModuleWrapper.from_config({"module": pickled, "name": "torch"})
    assert loads == [] and not marker.exists()


def _hostile_archive(kind: str, outside: Path) -> bytes:
    """A tar or zip whose members escape the folder they are extracted to (`..`, an absolute
    path, a symlink out), beside one genuine member."""
    import io
    import tarfile

    buffer = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("ok.txt", "genuine")
            archive.writestr("../../../escaped.txt", "escaped")
            archive.writestr(str(outside / "absolute.txt"), "escaped")
        return buffer.getvalue()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in [
            ("ok.txt", b"genuine"),
            ("../../../escaped.txt", b"escaped"),
            (str(outside / "absolute.txt"), b"escaped"),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, str(outside)
        archive.addfile(link)
        info = tarfile.TarInfo("link/through_link.txt")
        info.size = 7
        archive.addfile(info, io.BytesIO(b"escaped"))
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_keras_get_file_keeps_archive_members_inside_its_folder(
    kind, server, tmp_path, monkeypatch, keras
):
    """GHSA-hqp4-2352-xf5r: get_file(extract=True) through file_utils.extract_open_archive
    (filter_safe_zipinfos / filter_safe_tarinfos, tarfile's "data" filter). Run from the folder
    that holds the cache: Keras 3.12.0 checked members against the working folder, not the
    extraction folder, and let a tar write through a symlink out of it."""
    import warnings

    monkeypatch.chdir(tmp_path)
    url, routes = server
    outside = tmp_path / "outside"
    outside.mkdir()
    routes[f"hostile.{kind}"] = _hostile_archive(kind, outside)
    cache = tmp_path / "cache"
    cache.mkdir()  # a cache_dir that does not exist makes Keras use /tmp/.keras instead
    folder = cache / "datasets" / "hostile_extracted"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Keras warns of each member it skips
            returned = keras.utils.get_file(
                f"hostile.{kind}", f"{url}/hostile.{kind}", extract=True, cache_dir=str(cache)
            )
        assert Path(returned) == folder
    except AttributeError:
        # Keras 3.12.4's warning for a skipped zip member reads ZipInfo.name, which does not
        # exist: the extraction stops at the first escaping member (3.15.1 warns and goes on)
        assert kind == "zip"
    assert (folder / "ok.txt").read_text() == "genuine"
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert written - {f"cache/datasets/hostile.{kind}"} <= {
        f"cache/datasets/hostile_extracted/{name}" for name in ("ok.txt", "link/through_link.txt")
    }
    assert not any(outside.iterdir())


# The notebook stack's advisories (issue 31): package → (last affected release, advisories).
NOTEBOOK_ADVISORIES = {
    "nbconvert": ("7.17.0", "CVE-2025-53000 (fixed 7.17.0), CVE-2026-39377/-39378 (7.17.1)"),
    "jupyter-server": ("2.17.0", "CVE-2026-40934, CVE-2026-40110"),
}


@pytest.mark.parametrize("pins_file", ["requirements.txt", "requirements-latest.txt"])
def test_the_notebook_stack_is_pinned_past_its_advisories(pins_file):
    from packaging.requirements import Requirement
    from packaging.version import Version

    repo = Path(__file__).resolve().parents[1]
    pins = {}
    for line in (repo / pins_file).read_text().splitlines():
        if line.split("#")[0].strip():
            requirement = Requirement(line.split("#")[0])
            pins[requirement.name.lower().replace("_", "-")] = requirement
    if "jupyterlab" in pins:  # the lab would otherwise bring whichever server it accepts
        assert "jupyter-server" in pins, f"{pins_file} pins jupyterlab but not jupyter-server"
    for name, (affected, advisories) in NOTEBOOK_ADVISORIES.items():
        if name in pins:
            (pinned,) = [Version(s.version) for s in pins[name].specifier]
            assert pinned > Version(affected), f"{pins_file}: {name} {pinned} has {advisories}"
    tomllib = pytest.importorskip("tomllib")  # Python ≥ 3.11
    dependencies = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["dependencies"]
    (nbconvert,) = [Requirement(d) for d in dependencies if d.startswith("nbconvert")]
    # a plain `pip install .` cannot keep a vulnerable nbconvert
    assert not nbconvert.specifier.contains(NOTEBOOK_ADVISORIES["nbconvert"][0])


# ---------------------------------------------------------------- dataset downloads and archives
def _zip_bytes(members: dict, compression=zipfile.ZIP_DEFLATED) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _leftovers(parent: Path):
    return sorted(p.name for p in parent.iterdir()) if parent.exists() else []


def test_fetch_stops_an_endless_body_and_an_oversized_announcement(server, tmp_path):
    base, routes = server
    routes["endless.zip"], routes["big.zip"] = None, (b"x", 3 << 20)
    parent = tmp_path / "data"
    limit = f"{1 << 20:,} bytes (raise --max-download-gb if the archive is genuine)"
    with pytest.raises(FetchError) as error:
        fetch(parent / "BUSI", url=f"{base}/endless.zip", max_download_gb=1 / 1024)
    assert str(error.value) == f"{base}/endless.zip: sent more than {limit}; stopped"
    with pytest.raises(FetchError) as error:
        fetch(parent / "BUSI", url=f"{base}/big.zip", max_download_gb=1 / 1024)
    assert str(error.value) == (
        f"{base}/big.zip: the server announces {3 << 20:,} bytes, more than {limit}"
    )
    assert _leftovers(parent) == []


def test_zip_bombs_are_refused_before_extracting(tmp_path, monkeypatch):
    import data_setup.fetch as fetch_module

    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(_zip_bytes({"a/zeros.png": b"\0" * (2 << 20)}))
    parent = tmp_path / "data"
    with pytest.raises(FetchError) as error:
        fetch(parent / "BUSI", zip_path=bomb, max_unpacked_gb=1 / 1024)
    assert str(error.value) == (
        f"{bomb}: unpacks to {2 << 20:,} bytes, more than the {1 << 20:,} allowed (raise "
        "--max-unpacked-gb if the archive is genuine)"
    )
    monkeypatch.setattr(fetch_module, "RATIO_FLOOR", 0)
    size = bomb.stat().st_size
    with pytest.raises(FetchError) as error:
        fetch(parent / "BUSI", zip_path=bomb)
    assert str(error.value) == (
        f"{bomb}: unpacks to {2 << 20:,} bytes from {size:,} ({(2 << 20) // size}× its size; "
        "image archives barely compress): refused as a zip bomb"
    )
    assert _leftovers(parent) == []


def test_no_space_is_one_message_with_the_bytes_needed(tmp_path, monkeypatch):
    import data_setup.fetch as fetch_module
    import data_setup.files as files_module

    archive = tmp_path / "a.zip"
    archive.write_bytes(_zip_bytes({"a/1.png": b"1" * 3000}, zipfile.ZIP_STORED))
    parent = tmp_path / "data"
    parent.mkdir()
    usage = namedtuple("usage", "total used free")
    with monkeypatch.context() as patch:
        patch.setattr(files_module.shutil, "disk_usage", lambda _: usage(10**9, 10**9, 10))
        with pytest.raises(FetchError) as error:
            fetch(parent / "BUSI", zip_path=archive)
    assert str(error.value) == (
        f"folder {parent}: unpacking {archive} needs 3,000 bytes but the disk has 10 free; free "
        "space there or choose another --dest"
    )

    class FullDisk:  # the check passed, then the disk filled up while writing
        def __init__(self, *args):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *args):
            return False

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fetch_module, "_new_file", FullDisk)
    with pytest.raises(FetchError) as error:
        fetch(parent / "BUSI", zip_path=archive)
    assert str(error.value) == (
        f"disk full in {parent} while writing a/1.png of {archive} (3,000 of 3,000 bytes "
        "unpacked); free space there or choose another destination (nothing was kept)"
    )
    assert _leftovers(parent) == []


def test_members_outside_the_archive_are_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(_zip_bytes({"../../escaped.txt": b"x"}))
    with pytest.raises(FetchError) as error:
        fetch(tmp_path / "data" / "BUSI", zip_path=archive)
    assert str(error.value) == f"{archive}: member '../../escaped.txt' points outside the archive"
    assert not (tmp_path / "escaped.txt").exists() and _leftovers(tmp_path / "data") == []


def test_an_archive_of_the_wrong_dataset_never_reaches_dest(synth_root, tmp_path, capsys):
    from data_setup.__main__ import main as cli

    archive = tmp_path / "chest.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted((synth_root / "ChestXRay").rglob("*")):
            handle.write(path, path.relative_to(synth_root / "ChestXRay"))
    dest = tmp_path / "data" / "BUSI"
    assert cli(["fetch", "BUSI", "--zip", str(archive), "--dest", str(dest)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {archive}: not the BUSI dataset: ")
    assert _leftovers(tmp_path / "data") == []  # --dest untouched, no temp folder


# ---------------------------------------------------------------- data_zip reuse by content
def test_data_zip_is_reused_by_content_never_by_name(synth_root, tmp_path, monkeypatch, capsys):
    import os

    from data_setup.data_zip import unpack_data_zip
    from data_setup.synth import synth_dataset

    monkeypatch.setenv("S3F_CACHE_DIR", str(tmp_path / "cache"))
    archive = tmp_path / "data.zip"

    def write_archive(seed):
        synth_dataset("BUSI", tmp_path / f"src{seed}", count=2, size=24, seed=seed)
        with zipfile.ZipFile(archive, "w") as handle:
            for path in sorted((tmp_path / f"src{seed}").rglob("*")):
                handle.write(path, path.relative_to(tmp_path / f"src{seed}"))

    def files(folder):
        return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    write_archive(1)
    first = unpack_data_zip(str(archive), "BUSI")
    assert files(first) == files(tmp_path / "src1")
    write_archive(2)  # another archive, same name
    stat = archive.stat()
    os.utime(archive, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    second = unpack_data_zip(str(archive), "BUSI")
    assert second != first and files(second) == files(tmp_path / "src2")
    capsys.readouterr()
    assert unpack_data_zip(str(archive), "BUSI") == second
    assert "unpacked earlier from this same archive" in capsys.readouterr().out
