"""Benchmarks that back every speed claim of the project with a measured ratio.

Run them all with ``make bench`` (``python -m benchmarks``); each module also runs alone.
"""
