"""The bridge to PyTorch: state-dict layouts, export/import files, PyTorch module definitions."""
