"""Statistics over seeds, with no harness imports: comparisons, intervals and multiple
testing (compare.py) and the group-sequential test that decides a claim (sequential.py)."""
