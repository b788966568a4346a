"""Model files are untrusted input: check a `.keras` archive before Keras deserializes it.

A `.keras` file is a zip holding `config.json` (what to build), `metadata.json` and
`model.weights.h5`. Keras builds whatever the config names, and its own safe mode has been
bypassed many times (module functions such as `os.system` as a "layer", `TFSMLayer` loading a
foreign SavedModel, ...). So every loader of the kit (`s3f_common.load_model`, `pretrained`,
s3f-predict, s3f-export, the notebooks) first runs `check_model_file`, which reads the archive
with bounded sizes and accepts a config only if every object in it is

- a Keras layer of the fixed list below (pure computations: nothing that reads files, wraps
  foreign code or evaluates a Lambda), a Keras model, or a Keras initializer, regularizer,
  constraint, optimizer, learning-rate schedule, loss, metric or dtype policy;
- one of the kit's classes (also as the paper's notebooks saved them: module "__main__");
- a built-in activation, loss or metric *function* saved by name;
- one of Keras' structural markers (a tensor reference, a tuple, an array).

Anything else is refused with one message naming the file and the entry. Legacy HDF5 model
files (`.h5`) are refused outright: Keras ignores safe mode for them. The sizes the archive
declares are checked before any member is read or unpacked (MAX_UNPACKED_BYTES, MAX_EXPANSION):
Keras and the kit unpack the weights into memory or a temporary folder only after this check.
"""

from __future__ import annotations

import functools
import json
import zipfile
from pathlib import Path

from s3f_kit.experiments import CONTROL_EXPERIMENTS, EXPERIMENTS

CONFIG = "config.json"
METADATA = "metadata.json"
WEIGHTS = "model.weights.h5"
MEMBERS = (CONFIG, METADATA, WEIGHTS)  # all a kit or paper model holds (no assets)

MAX_CONFIG_BYTES = 4 << 20  # a kit model's config is ~50 kB
MAX_METADATA_BYTES = 64 << 10
# What a model file may unpack to, all members together (Keras unpacks the weights into memory
# or a temporary folder, the kit's rebuild of an older Keras' model into the temp folder): twice
# the largest model the kit makes, the BUSI S³F-Net SN2 with Adam's state (float32 weights and
# two moments per parameter: 1.66 GB; 0.55 GB without them). Checked before anything is read.
LARGEST_KIT_PARAMETERS = max(
    e.params for e in (*EXPERIMENTS.values(), *CONTROL_EXPERIMENTS.values())
)
MAX_UNPACKED_BYTES = 2 * 3 * 4 * LARGEST_KIT_PARAMETERS
# Keras stores its members uncompressed (1:1) and float32 weights barely deflate, so a member
# that unpacks to over MAX_EXPANSION times what it stores is a decompression bomb (a 1 MB file
# declaring 1 GiB of weights); below EXPANSION_FLOOR_BYTES (a config's JSON deflates well) the
# ratio does not matter. The same ratio as Keras' own guard, whose floor (4 GiB) is far higher.
MAX_EXPANSION = 100
EXPANSION_FLOOR_BYTES = 1 << 20

KIT_CLASSES = ("SpectralFilter", "SpectralFilterLayer", "BilinearFusion")
KERAS_MODELS = frozenset({"Functional", "Sequential", "Model"})
# Keras layers whose from_config only sets up arithmetic. Deliberately absent: Lambda (runs
# marshalled code), TFSMLayer (loads a SavedModel with its own ops), TorchModuleWrapper and
# JaxLayer/FlaxLayer (pickled foreign code), StringLookup/IntegerLookup/TextVectorization
# (read vocabulary files named in the config).
KERAS_LAYERS = frozenset(
    """
    InputLayer Dense EinsumDense Identity
    Conv1D Conv2D Conv3D Conv2DTranspose DepthwiseConv2D SeparableConv2D
    MaxPooling1D MaxPooling2D AveragePooling1D AveragePooling2D
    GlobalAveragePooling1D GlobalAveragePooling2D GlobalMaxPooling1D GlobalMaxPooling2D
    BatchNormalization LayerNormalization GroupNormalization UnitNormalization
    Activation ReLU LeakyReLU PReLU ELU Softmax
    Dropout SpatialDropout2D GaussianNoise GaussianDropout ActivityRegularization
    Flatten Reshape Permute RepeatVector ZeroPadding2D Cropping2D UpSampling2D
    Rescaling Resizing CenterCrop Normalization
    Concatenate Add Subtract Multiply Average Maximum Minimum Dot
    """.split()
)
# Keras namespaces whose every class is plain arithmetic or bookkeeping.
KERAS_FAMILIES = tuple(
    "initializers regularizers constraints optimizers optimizers.schedules losses metrics "
    "dtype_policies".split()
)
# Functions Keras saves by name (an activation, loss or metric given as a function).
FUNCTION_FAMILIES = ("activations", "losses", "metrics")
NOT_MODELING = frozenset({"get", "serialize", "deserialize"})
# Keras' own markers inside a config; "__lambda__" (marshalled code) and "__typespec__" are not.
KERAS_MARKERS = frozenset("__keras_tensor__ __tuple__ __numpy__ __tensor__ __bytes__".split())

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class UnsafeModelFile(ValueError):
    """A model file the kit will not let Keras deserialize; the message names the file."""

    def __init__(self, source, reason: str):
        super().__init__(f"{source}: refused to load: {reason}")
        self.source, self.reason = source, reason


_refuse = UnsafeModelFile


# --------------------------------------------------------------------------- the archive


def _read_member(path, archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    info = archive.getinfo(name)
    if info.file_size > limit:
        raise _refuse(path, f"{name} unpacks to {info.file_size:,} bytes (at most {limit:,})")
    with archive.open(info) as handle:  # zipfile stops at the declared size: bounded
        return handle.read(limit + 1)


def _check_members(path, archive: zipfile.ZipFile) -> None:
    names = [info.filename for info in archive.infolist()]
    unexpected = sorted(set(names) - set(MEMBERS))
    if unexpected:
        raise _refuse(
            path,
            f"unexpected archive member {unexpected[0]!r} (a kit or paper model holds only "
            f"{', '.join(MEMBERS)})",
        )
    if len(names) != len(set(names)):
        raise _refuse(path, "an archive member appears twice")
    if CONFIG not in names:
        raise _refuse(path, f"no {CONFIG} in the archive (not a .keras model)")
    # the sizes the archive declares, which bound what zipfile unpacks, checked before any
    # member is read or extracted (here, by Keras or by the kit's rebuild)
    for info in archive.infolist():
        if (
            info.file_size > EXPANSION_FLOOR_BYTES
            and info.file_size > MAX_EXPANSION * info.compress_size
        ):
            raise _refuse(
                path,
                f"{info.filename} unpacks to {info.file_size:,} bytes from "
                f"{info.compress_size:,} stored (over {MAX_EXPANSION}×; Keras stores members "
                "uncompressed): a decompression bomb",
            )
    total = sum(info.file_size for info in archive.infolist())
    if total > MAX_UNPACKED_BYTES:
        raise _refuse(
            path,
            f"its members unpack to {total:,} bytes (at most {MAX_UNPACKED_BYTES:,}, twice the "
            "largest model the kit makes)",
        )


def read_config(path) -> tuple[dict, dict]:
    """(config, metadata) of a `.keras` file, read with bounded sizes; not yet checked."""
    path = Path(path)
    with open(path, "rb") as handle:
        if handle.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
            raise _refuse(
                path,
                "a legacy HDF5 model file; Keras ignores safe mode for these and would run any "
                "code stored in them. Re-save the model as .keras where you trust it",
            )
    if not zipfile.is_zipfile(path):
        raise _refuse(path, "not a .keras model (expected the zip archive Keras writes)")
    try:
        with zipfile.ZipFile(path) as archive:
            _check_members(path, archive)
            raw = _read_member(path, archive, CONFIG, MAX_CONFIG_BYTES)
            meta = b"{}"
            if METADATA in archive.namelist():
                meta = _read_member(path, archive, METADATA, MAX_METADATA_BYTES)
        config, metadata = json.loads(raw), json.loads(meta)
    except UnsafeModelFile:
        raise
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise _refuse(path, f"damaged archive ({error})") from error
    except (ValueError, RecursionError) as error:  # JSONDecodeError is a ValueError
        raise _refuse(path, f"{CONFIG} or {METADATA} is not valid JSON ({error})") from error
    if not isinstance(config, dict) or not isinstance(metadata, dict):
        raise _refuse(path, f"{CONFIG} and {METADATA} must each hold a JSON object")
    return config, metadata


# --------------------------------------------------------------------------- the config


@functools.lru_cache(maxsize=1)
def _keras_names() -> tuple[frozenset, frozenset]:
    """(class names, function names) the installed Keras exports in the safe families."""
    import importlib

    classes, functions = set(KERAS_LAYERS | KERAS_MODELS), set()
    for family in KERAS_FAMILIES:
        namespace = importlib.import_module(f"keras.{family}")
        classes |= {n for n, v in vars(namespace).items() if isinstance(v, type)}
    for family in FUNCTION_FAMILIES:
        namespace = importlib.import_module(f"keras.{family}")
        functions |= {
            n
            for n, v in vars(namespace).items()
            if callable(v) and not isinstance(v, type) and n not in NOT_MODELING
        }
    return frozenset(classes), frozenset(functions)


def _is_keras_module(module, families=None) -> bool:
    """`module` is Keras' own (with `families`: keras[.src].<family>[.…] of one of them)."""
    if not isinstance(module, str):
        return False
    if families is None:
        return module == "keras" or module.startswith("keras.")
    prefixes = [p for family in families for p in (f"keras.{family}", f"keras.src.{family}")]
    return any(module == p or module.startswith(f"{p}.") for p in prefixes)


def _problem(entry: dict) -> str | None:
    """Why a config object (a dict with class_name/module) is not allowed, or None."""
    class_name, module = entry.get("class_name"), entry.get("module")
    registered = entry.get("registered_name")
    classes, functions = _keras_names()
    if not isinstance(class_name, str):
        return "an object without a class name"
    if class_name in KERAS_MARKERS and module is None:
        return None
    if class_name in KIT_CLASSES:
        # Keras resolves these from the kit's registry by this name and never imports `module`
        # (the paper's notebooks saved "__main__" there)
        if registered in (class_name, f"s3f>{class_name}"):
            return None
        return f"a kit class with a foreign registered_name {registered!r}"
    if not (_is_keras_module(module) or (module == "builtins" and class_name == "function")):
        return "not from Keras or the kit"
    if class_name == "function":
        name = entry.get("config")
        if (
            isinstance(name, str)
            and name in functions
            and registered in (None, name, "function")  # Keras writes each of these
            and (module == "builtins" or _is_keras_module(module, FUNCTION_FAMILIES))
        ):
            return None
        return "a function that is not a Keras activation, loss or metric"
    if class_name in classes and registered in (None, class_name):
        return None
    return "not one of the Keras classes the kit allows in a model file"


def _describe(entry: dict) -> str:
    shown = {k: entry[k] for k in ("module", "class_name") if k in entry}
    inner = entry.get("config")
    if isinstance(inner, str):
        shown["config"] = inner
    name = entry.get("name") or (inner.get("name") if isinstance(inner, dict) else None)
    if name:
        shown["name"] = name
    return ", ".join(f"{key} {value!r}" for key, value in shown.items())


def unsafe_entries(config) -> list[tuple[str, str, dict]]:
    """(location, reason, entry) of every object in `config` that Keras must not build."""
    found, stack = [], [("", config)]
    while stack:  # iterative: a deeply nested config cannot exhaust the recursion limit
        where, node = stack.pop()
        if isinstance(node, dict):
            if "class_name" in node or "module" in node:
                reason = _problem(node)
                if reason:
                    found.append((where, reason, node))
            stack.extend((f"{where}.{key}".lstrip("."), value) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((f"{where}[{i}]", value) for i, value in enumerate(node))
    return sorted(found, key=lambda item: item[0])


def check_model_file(path) -> dict:
    """Read and check a `.keras` file before any deserialization; returns its config.

    Raises UnsafeModelFile (a ValueError) naming the file and the first offending entry."""
    config, _ = read_config(path)
    bad = unsafe_entries(config)
    if bad:
        where, reason, entry = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise _refuse(
            path,
            f"{CONFIG} entry {where or 'at the top'} ({_describe(entry)}): {reason}{more}. "
            "A model file may hold only Keras layers and the kit's classes: anything else "
            "could run code when loaded",
        )
    return config
