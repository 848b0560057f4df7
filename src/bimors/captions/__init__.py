"""Captions: a frozen captioner, a frozen caption encoder and the caption store."""
