"""tfedge-device: run tfedge models with a TFLite interpreter runtime; never imports TensorFlow."""

__version__ = "0.1.0"
