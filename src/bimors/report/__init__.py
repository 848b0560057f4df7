"""Aggregation of run records into tables and plots."""
