"""Everything that reads results: per-item statistics, verdicts against the reported scores, the
paper's claims, regression, the regenerated tables and plots (`evalsuite tables`). Imports
evalsuite.results, evalsuite.benchmarks, evalsuite.reward.sections, repro and itself only."""
