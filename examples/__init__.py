"""Runnable examples of lrjax (``python -m examples.mnist.main`` from the repository root)."""
