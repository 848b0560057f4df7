"""Foundations every other package stands on: errors, atomic files, config parsing, registries.

Nothing here imports another part of bimors, so any layer may use it.
"""
