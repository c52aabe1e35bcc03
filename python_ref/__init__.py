"""LitePose reference side: pre/post-processing, LiteRT runner, decoders, evaluation, drawing.

Imports no TensorFlow, so it runs on a device with numpy, OpenCV, SciPy and ai-edge-litert.
"""

__version__ = "0.1.0"
