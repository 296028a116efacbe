"""Benchmark tools and the VLM stand-in used by tests and benchmarks."""
