"""Data: splits, the `Batch` type and the batchers that feed training (BPTT windows, length-bucketed lines, texts and pairs), the addition questions."""
