"""Text: reading files (encodings), tokenisers and vocabulary, corpus streaming, named corpora, labelled files, pairs files."""
