"""Everything that reads results: per-item statistics, verdicts against the reported scores, the
paper's claims, regression, the regenerated tables and plots (`evalsuite tables`), and the paper's
data tables (contamination, languages) against the measurement files `evalsuite contamination` /
`languages` write, read as data (data_tables.py). Imports
evalsuite.results, evalsuite.benchmarks, evalsuite.reward_sections, repro and itself only."""
