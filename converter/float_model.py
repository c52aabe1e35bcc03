"""The float network of an official checkpoint, for `litepose predict --checkpoint`: the official
per-image input size and pre-processing, for parity with published numbers. Lives here, not in python_ref,
because it needs TensorFlow and the Keras network; the CLI plugs it into python_ref.predict."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from python_ref.preprocess import official_resize


class CheckpointModel:
    """An official checkpoint as a float Keras network, rebuilt for each official input size it meets."""

    default_mode, default_flip = "official", True

    def __init__(self, path, arch: str | None = None, joints: int | None = None, num_threads: int | None = None):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf  # lazy: only the checkpoint route needs TensorFlow

        if num_threads is not None:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(int(num_threads))
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:  # TensorFlow already initialised in this process (tests); keep its setting
                pass
        from .checkpoint import build_keras_from_checkpoint

        self._models: dict[tuple[int, int], object] = {}
        # The first build (at the variant's square size) reads the checkpoint once and tells the input size;
        # other sizes reuse its weights (same layers, only the input shape differs).
        model, self.info = build_keras_from_checkpoint(path, arch=arch, joints=joints)
        self.input_size = int(self.info["arch"]["img_size"])
        self.num_joints = int(self.info["num_joints"])
        self._models[(self.input_size, self.input_size)] = model
        self.description = f"{Path(path).name} ({self.info['arch_name']}, short side {self.input_size}, {self.num_joints} joints)"
        self.warnings = list(self.info.get("warnings", []))

    def _model_for(self, hw: tuple[int, int]):
        model = self._models.get(hw)
        if model is None:
            from .network import build_litepose

            first = next(iter(self._models.values()))
            model = build_litepose(self.info["arch"], self.num_joints, hw)
            model.set_weights(first.get_weights())
            self._models = {k: v for k, v in self._models.items() if v is first}  # keep memory bounded
            self._models[hw] = model
        return model

    def prepare(self, image_rgb: np.ndarray):
        """(network input uint8 RGB at the official per-image size, its `OfficialTransform`)."""
        return official_resize(image_rgb, self.input_size)

    def __call__(self, net_input: np.ndarray) -> dict[str, np.ndarray]:
        model = self._model_for(tuple(net_input.shape[:2]))
        out = model(net_input.astype(np.float32)[None], training=False)
        return {name: np.asarray(out[name], np.float32)[0] for name in ("heatmaps_s4", "tags_s4", "heatmaps_s2")}
