"""LitePose converter: Keras-native network, checkpoint import, calibration, TFLite/ONNX export, CLI."""

from python_ref import __version__  # one version for the whole toolkit

__all__ = ["__version__"]
