"""Experiment configs (ml_collections), loaded with `--config configs/FILE.py:NAME`."""
