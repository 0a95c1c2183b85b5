"""Reading .tflite files and their results: graph (the flatbuffer reader), inspection, compat (runtime
releases), latency, evaluate, compare and report, export_c (a TFLM C array)."""
