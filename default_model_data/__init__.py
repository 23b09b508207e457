"""Training and evaluation code for the embedded default model (not shipped in the wheel)."""
