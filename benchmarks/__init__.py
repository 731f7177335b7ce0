"""Benchmarks of lrjax against torch and optax: ``python -m benchmarks.run_all`` (see README.md)."""
