"""MNIST with any lrjax schedule, in Flax (NNX) with optax: the PyTorch StepLR example, ported."""
