"""Analyses of the training data sets: contamination and languages; may import repro and
evalsuite.results, not report/harness internals except data readers."""
