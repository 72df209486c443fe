"""Data: splits, the `Batch` type and the batchers that feed training (BPTT windows, length-bucketed lines and texts)."""
