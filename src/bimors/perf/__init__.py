"""Performance measurement: the fast path against the reference recipe (``bimors bench``)."""
