"""tfedge: TensorFlow/Keras to TFLite for edge devices — convert, verify, optimize, deploy."""

__version__ = "0.1.0"
