"""Every choice list of `lm`, in one place: flags, configs and checkpoints check against these."""

CELLS = ("lstm", "gru", "rnn")              # recurrent cells (lm.models.encoder maps them to layers)
CONV_ENCODERS = ("cnn", "cnn-lstm")          # convolution over time (+ max-pool and an LSTM)
ENCODERS = CELLS + ("bag",) + CONV_ENCODERS  # classifier encoders: a cell, none, or convolutional
DECODER_INPUTS = ("teacher", "repeat")     # seq2seq decoder input: previous target token, or
                                            # the encoder's final state at every step
SEQ2SEQ_TASKS = ("addition", "pairs")       # built-in addition questions, or a source<TAB>target file
POOLS = ("mean", "max", "last")             # pooling of encoder states over a text's steps
LEVELS = ("char", "word")                   # tokenisation level
# Tokenisers of each level, the default first: "lines" (str.split()'s words, each carrying
# the one space before it; a line break carries the next line's indentation), "split" (the
# same with indentation as tokens of its own), "words" (punctuation and digits apart),
# "runs" (lm 0.1's word level: runs of whitespace are tokens).
TOKENIZERS = {"char": ("char",), "word": ("lines", "split", "words", "runs")}
LEGACY_TOKENIZERS = {"char": "char", "word": "runs"}   # runs saved before the choice existed
SOFTMAXES = ("full", "adaptive")            # language-model output layers
OPTIMIZERS = ("adam", "sgd")
DTYPES = ("float32", "float64")             # parameter dtypes
ENCODING_ERRORS = ("strict", "replace")     # what to do with undecodable bytes
