"""Storage: atomic writes, bounded readers for untrusted zip/npz/JSON files, checkpoints and run directories."""
