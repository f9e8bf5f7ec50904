"""Data only: the embedded baselines' checkpoints and ``registry.json`` (read by :mod:`mribench.models.shipped`)."""
