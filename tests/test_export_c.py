"""`tfedge export-c`: the C array round-trips to the model's bytes, compiles, and bad inputs fail cleanly."""

from __future__ import annotations

import subprocess

import pytest
from conftest import assert_clean_error

from tfedge.analysis.export_c import parse_c_array


def test_bytes_round_trip_with_header_and_alignment(tfedge, digits_int8, tmp_path):
    out = tmp_path / "model_data.cc"
    result = tfedge("export-c", digits_int8, "-o", out, "--name", "g_digits")
    assert result.returncode == 0, result
    source = out.read_text()
    assert "alignas(16) const unsigned char g_digits[]" in source
    assert f"const unsigned int g_digits_len = {digits_int8.stat().st_size};" in source
    assert parse_c_array(source, "g_digits") == digits_int8.read_bytes()
    header = (tmp_path / "model_data.h").read_text()
    assert "extern const unsigned char g_digits[];" in header and "#ifndef MODEL_DATA_H_" in header


def test_generated_source_compiles_and_holds_the_model(tfedge, digits_int8, tmp_path):
    """Compile the array with a tiny main that checks alignment and writes the bytes back out."""
    out = tmp_path / "model_data.cc"
    assert tfedge("export-c", digits_int8, "-o", out).returncode == 0
    main = tmp_path / "main.cc"
    main.write_text(
        '#include <cstdint>\n#include <cstdio>\n#include "model_data.h"\n'
        "int main(int, char** argv) {\n"
        "  if (reinterpret_cast<std::uintptr_t>(g_model) % 16 != 0) return 3;\n"
        '  FILE* f = std::fopen(argv[1], "wb");\n'
        "  std::fwrite(g_model, 1, g_model_len, f);\n  std::fclose(f);\n  return 0;\n}\n")
    binary = tmp_path / "dump"
    subprocess.run(["g++", "-std=c++17", "-O0", "-o", str(binary), str(main), str(out)], check=True,
                   cwd=tmp_path, timeout=120)
    dumped = tmp_path / "dumped.tflite"
    subprocess.run([str(binary), str(dumped)], check=True, timeout=30)
    assert dumped.read_bytes() == digits_int8.read_bytes()


def test_c_output_compiles_as_c11(tfedge, digits_int8, tmp_path):
    out = tmp_path / "model_data.c"
    assert tfedge("export-c", digits_int8, "-o", out, "--json").returncode == 0
    assert "#include <stdalign.h>" in out.read_text()
    subprocess.run(["gcc", "-std=c11", "-c", "-o", str(tmp_path / "m.o"), str(out)], check=True, timeout=120)


@pytest.mark.parametrize("args,words", [
    (["--name", "2bad"], ["not a valid C identifier"]),
    (["--name", "int"], ["not a valid C identifier"]),
])
def test_bad_names(tfedge, digits_int8, tmp_path, args, words):
    result = tfedge("export-c", digits_int8, "-o", tmp_path / "m.cc", *args)
    assert_clean_error(result, 2, *words)
    assert not (tmp_path / "m.cc").exists()


def test_bad_inputs(tfedge, tmp_path, digits_int8):
    assert_clean_error(tfedge("export-c", tmp_path / "missing.tflite", "-o", tmp_path / "m.cc"), 2, "not found")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer at all")
    assert_clean_error(tfedge("export-c", junk, "-o", tmp_path / "m.cc"), 2, "not a TFLite model")
    assert_clean_error(tfedge("export-c", digits_int8, "-o", tmp_path / "m.txt"), 2, ".cc")
    assert_clean_error(tfedge("export-c", digits_int8, "-o", tmp_path / "nodir" / "m.cc"), 2, "does not exist")
    assert not list(tmp_path.glob("m.*"))
