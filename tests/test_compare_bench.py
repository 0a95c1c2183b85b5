"""`tfedge bench`: benchmark_model's figures for real converted models through tfedge_device.bench, several
thread counts, JSON, and bad inputs."""

from __future__ import annotations

import json
import time

from conftest import assert_clean_error


def test_json_per_model_and_thread_count(tfedge, digits_int8, digits_float):
    started = time.perf_counter()
    result = tfedge("bench", digits_int8, digits_float, "--threads", "1,2", "--runs", 7, "--warmup", 2, "--json")
    elapsed_us = (time.perf_counter() - started) * 1e6
    assert result.returncode == 0, result
    data = json.loads(result.stdout)
    assert [(r["model"].split("/")[-1], r["threads"]) for r in data["results"]] == [
        ("digits_int8.tflite", 1), ("digits_int8.tflite", 2), ("digits_float32.tflite", 1),
        ("digits_float32.tflite", 2)]
    for item in data["results"]:
        stats = item["inference"]
        assert stats["count"] == 7 and 0 < stats["min"] <= stats["p50"] <= stats["p90"] <= stats["max"]
        assert 0 < item["init_us"] < elapsed_us  # within the whole command's wall clock
        assert item["peak_rss_mb"] >= max(item["rss_start_mb"], item["rss_after_init_mb"]), item
        assert "approximate" in item["memory_note"]


def test_human_output_uses_benchmark_model_vocabulary(tfedge, digits_int8, digits_float):
    result = tfedge("bench", digits_int8, digits_float, "--runs", 5)
    assert result.returncode == 0, result
    for words in ("count=5", "Inference timings in us: Init:", "Peak memory footprint (MB)", "p50 ms"):
        assert words in result.stdout, words


def test_bad_inputs(tfedge, digits_int8, tmp_path):
    assert_clean_error(tfedge("bench", digits_int8, "--threads", "1,x"), 2, "--threads")
    assert_clean_error(tfedge("bench", digits_int8, "--threads", "0"), 2, "1..256")
    assert_clean_error(tfedge("bench", tmp_path / "missing.tflite"), 2, "not found")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"1234TFL3" + b"\x00" * 40)
    assert_clean_error(tfedge("bench", junk), 2, "junk.tflite")
    assert_clean_error(tfedge("bench", digits_int8, "--runs", 0), 2, "--runs", "0 is not in the range")
