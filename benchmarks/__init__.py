"""Timing scripts (`python -m benchmarks.NAME`); each writes its measurements to benchmarks/results/."""
