"""Write `.keras` files exactly as the paper's notebooks saved them (for loading tests).

The original classes were defined in a notebook (config `module` "__main__", `registered_name`
the bare class name), named `SpectralFilterLayer` and `BilinearFusion`, with `filters` as the
only extra config key. Keras stores each layer's weights under its snake-cased class name.
"""

import json
import zipfile

import keras

import s3f_common
from s3f_kit import recipe as s3f_recipe


class SpectralFilterLayer(s3f_common.SpectralFilter):
    def get_config(self):
        config = keras.layers.Layer.get_config(self)
        config["filters"] = self.filters
        return config


class BilinearFusion(s3f_common.BilinearFusion):
    pass


def _paper_layer(layer):
    if isinstance(layer, s3f_common.SpectralFilter):
        if layer.channel_mixing != "dense" or layer.modes is not None:
            raise ValueError("the paper's layer has no channel_mixing/modes options")
        return SpectralFilterLayer(layer.filters, name=layer.name)
    if isinstance(layer, s3f_common.BilinearFusion):
        return BilinearFusion(name=layer.name)
    return layer.__class__.from_config(layer.get_config())


def set_module(path, module="__main__"):
    """Rewrite the config's module of the two custom classes, as a notebook save has it."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    custom = [
        layer
        for layer in config["config"]["layers"]
        if layer["class_name"] in ("SpectralFilterLayer", "BilinearFusion")
    ]
    for layer in custom:
        assert layer["registered_name"] == layer["class_name"]  # unregistered, bare name
        # beyond the base Layer keys (newer Keras adds autocast, activity_regularizer)
        assert set(layer["config"]) - set(keras.layers.Layer().get_config()) <= {"filters"}
        layer["module"] = module
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return len(custom)


def save_in_paper_format(model, path, module="__main__"):
    """Save a kit model as the paper's release files are: same weights, paper classes."""
    clone = keras.models.clone_model(model, clone_function=_paper_layer)
    clone.set_weights(model.get_weights())
    clone.compile(optimizer="adam", loss=s3f_recipe.loss(model), metrics=["accuracy"])
    clone.save(path)
    return set_module(path, module)
