"""The registry of S³F-Net fusions: how the spatial and spectral branch vectors become one.

One entry per fusion holds everything a part of the kit needs to know about it, so a new fusion
is registered in one place and every part follows:

- the model builder (s3f_common.build_model, s3f_common.fuse) calls the entry's `layer` on the
  two branch vectors;
- the model-file check (s3f_modelfile) allows that layer's class in a `.keras` file, and the
  loader (s3f_common.custom_objects) hands Keras the class;
- FLOP counting (s3f_flops) counts the layer by the entry's `flops`;
- explainability (s3f_explain) finds the layer in a loaded model and reads the branch vectors
  at its two inputs;
- the claims (s3f_claims) compare each dataset's paper fusion with every other one, named by
  `description`; the run parameter `fusion` (s3f_config) accepts every registered name.

A fusion is one Keras layer called on [spatial vector, spectral vector] (it may hold layers of
its own, e.g. Dense projections). This module imports no TensorFlow (the registry of
experiments and the run parameters read it): the paper's two fusions name their layer class,
which Keras (`keras.layers`) or the kit's model library (`s3f_common`) defines; a new fusion
brings its class. docs/extending.md ("A new fusion") has a worked example.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Fusion:
    name: str  # the run parameter's value, e.g. "concat"; part of run folder names
    description: str  # how the claims and docs name it, e.g. "concatenation"
    # The class of the one layer that joins the two branch vectors (called as
    # layer(name="fusion")([spatial, spectral])); by name only for the paper's fusions, whose
    # classes keras.layers or s3f_common define.
    layer: type | str
    # FLOPs of one image through that layer, given the built layer (its input shapes and own
    # attributes), by the counting rule of s3f_flops (multiply-adds, two FLOPs each).
    flops: Callable[[Any], float]

    @property
    def layer_name(self) -> str:
        """The layer's class name, as a model file's config records it."""
        return self.layer if isinstance(self.layer, str) else self.layer.__name__


def _widths(layer) -> tuple[int, int]:
    return tuple(int(tensor.shape[-1]) for tensor in layer.input)


def _no_flops(layer) -> float:
    return 0.0  # concatenation copies; it multiplies and adds nothing


def _outer_product_flops(layer) -> float:
    spatial, spectral = _widths(layer)
    return 2.0 * spatial * spectral  # the outer product: one multiply-add per entry


# name → entry; the paper's two first (the order of FUSIONS and of the claims).
REGISTRY: dict[str, Fusion] = {
    "concat": Fusion("concat", "concatenation", "Concatenate", _no_flops),
    "bilinear": Fusion("bilinear", "bilinear fusion", "BilinearFusion", _outer_product_flops),
}
# The names, live: what is registered later is in it too (s3f_experiments.FUSIONS is this view).
NAMES = REGISTRY.keys()


def get(name: str) -> Fusion:
    """The registered fusion `name`; ValueError naming the registered ones otherwise."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"fusion must be one of {', '.join(map(repr, REGISTRY))}, got {name!r}"
        ) from None


def register(fusion: Fusion) -> Fusion:
    """Add a new fusion (its layer class given, not its name); returns it. A name or layer
    class already registered is refused: a run folder or a model file would become ambiguous."""
    if not isinstance(fusion, Fusion):
        raise TypeError(f"register takes a Fusion, got {type(fusion).__name__}")
    if not isinstance(fusion.layer, type):
        raise ValueError(
            f"fusion {fusion.name!r}: give the layer class itself (only the paper's fusions "
            "name theirs)"
        )
    if not fusion.name or not fusion.name.isidentifier():
        raise ValueError(f"fusion name must be a word (it names run folders), got {fusion.name!r}")
    if fusion.name in REGISTRY:
        raise ValueError(f"fusion {fusion.name!r} is already registered")
    taken = {entry.layer_name: entry.name for entry in REGISTRY.values()}
    if fusion.layer_name in taken:
        raise ValueError(
            f"fusion {fusion.name!r}: layer class {fusion.layer_name} is already fusion "
            f"{taken[fusion.layer_name]!r}'s"
        )
    REGISTRY[fusion.name] = fusion
    return fusion


def unregister(name: str) -> None:
    """Remove a fusion registered with `register`; the paper's two stay."""
    if isinstance(get(name).layer, str):
        raise ValueError(f"fusion {name!r} is one of the paper's; it cannot be unregistered")
    del REGISTRY[name]
