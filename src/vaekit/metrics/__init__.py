"""Metrics over trained models: sample quality (classifier-based), disentanglement."""
