"""Models built from the layers: the shared encoder and the recurrent language model."""
from .encoder import CELLS, Encoder
from .language_model import LanguageModelRNN

__all__ = ["CELLS", "Encoder", "LanguageModelRNN"]
