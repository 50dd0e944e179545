"""The evidence behind the written answers of Parts 2, 3 and 5 (``python -m evidence``)."""
