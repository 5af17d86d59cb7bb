"""promptkit benchmarks: each module runs standalone and prints a table; run.py runs them all."""
