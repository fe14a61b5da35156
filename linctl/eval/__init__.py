"""Evaluation: metrics of trained checkpoints."""
