"""Course-wide helpers for CS236781 (not specific to one homework)."""
