"""The conversion pipeline, in the order data flows through it:

sources (+ hf_source, rewrites, safe_loading) -> calibration -> modes / registry (+ selective, auto, and
tfedge.edgetpu.mode) -> converter (the TFLite converter call) -> verify -> pipeline (convert(): the atomic write
of OUT.tflite and its manifest).

`from tfedge.convert import ConvertRequest, convert` is the public entry point; it is resolved lazily so that
importing a stage (e.g. `tfedge.convert.registry` for `--help`) does not load the whole pipeline.
"""

__all__ = ["ConvertRequest", "convert"]


def __getattr__(name):
    if name in __all__:
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
