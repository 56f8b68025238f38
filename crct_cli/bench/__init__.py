"""Benchmarks: score landmark files and trackers against ground truth."""
