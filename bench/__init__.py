"""Benchmarks: each script measures against a baseline taken in the same run and writes BENCHMARKS.md.

May import every product package and ``tests.support``; no product package imports it.
"""
