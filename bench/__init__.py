"""Benchmarks: each script measures against a baseline taken in the same run and writes BENCHMARKS.md."""
