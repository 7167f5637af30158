"""Benchmarks, run on demand (`make bench`, or one script at a time); see bench/README.md."""
