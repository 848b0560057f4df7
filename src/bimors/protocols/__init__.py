"""The generalisation protocols of the RS prompt-learning literature, as pure functions."""
