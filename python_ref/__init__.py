"""LitePose reference side: pre/post-processing, LiteRT runner, decoders, evaluation, drawing.

Imports no TensorFlow, so it runs on a device with numpy, OpenCV, SciPy and ai-edge-litert. The names
most scripts need are importable from here (loaded on first use, so `import python_ref` stays cheap):

    from python_ref import DeployedModel, load_image_rgb, predict_image, draw_poses, dataset_for_joints
    model = DeployedModel("litepose-m-448-int8.tflite")
    image = load_image_rgb("people.jpg")                  # uint8 RGB (not OpenCV's BGR)
    poses, scores = predict_image(model, image)           # (P, J, 3) x, y, score in image pixels
    overlay = draw_poses(image, poses, scores, dataset_for_joints(model.num_joints).skeleton)
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "DeployedModel": "predict", "predict_image": "predict", "run_predict": "predict",
    "TFLiteRunner": "runner",
    "load_image_rgb": "preprocess", "letterbox": "preprocess", "Letterbox": "preprocess",
    "official_resize": "preprocess",
    "decode_fast": "decoder", "decode_official": "decoder", "FastDecoderParams": "decoder",
    "draw_poses": "draw", "dataset_for_joints": "keypoints",
    "evaluate_keypoints": "evaluate", "load_annotations": "evaluate", "load_results": "evaluate",
    "LitePoseError": "errors",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'python_ref' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
