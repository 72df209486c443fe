"""Diagnostics: gradient norms back through time, and the long-range recall task."""
