"""lm: recurrent language models and sentiment classifiers in numpy."""

__version__ = "0.1.0"
