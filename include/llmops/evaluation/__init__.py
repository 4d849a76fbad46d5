"""Benchmark evaluation of candidate models and the promotion gate."""
