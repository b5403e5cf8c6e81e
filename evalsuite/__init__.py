"""Evaluation of SmolTulu-style models with the SmolLM2/lighteval protocol the paper used.

The flow is run → results → tables:

- harness/       runs and scores the seven benchmarks (lm-eval tasks, backends, request cache,
                 results folders, `score` for outside outputs)
- reward/        reward models on RewardBench and UFB
- results.py     the results format both sides meet at; benchmarks.py: what each benchmark is;
                 reward_sections.py: RewardBench's sections and how they average
- report/        reads results: statistics, verdicts, claims, tables and plots (`tables`)
- trainingdata/  analyses of the training sets themselves (contamination, languages)
- sharpness/     sharpness of a checkpoint's SFT loss (`sharpness`), written beside results
- cli.py, run_cmd.py, demo.py, fidelity.py: the commands, which may use all of the above

Import rules (tests/test_layout.py and the contracts in pyproject.toml): evalsuite imports core
and never repro. harness, reward and report import only results.py, benchmarks.py,
reward_sections.py and themselves (reward also harness.sources for reading data files); report
never imports the harness, and the harness never imports reward or report. sharpness imports
results.py and harness.run_folder (the model identity results carry); report reads its file
format (sharpness.record) and nothing else of it. trainingdata reads benchmark files through
harness.sources and the paper's printed data tables through report.data_tables.
"""
