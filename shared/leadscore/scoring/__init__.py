"""Scoring: the model format (data) and the engine (pure code)."""
