"""Drift: is the champion still working on today's data, where did the data move, and what to do."""
