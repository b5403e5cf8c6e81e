"""SmolTulu reproduction: locked Tulu 3 recipes (recipes/*.yaml) trained on TRL.

- stages/     one module per training stage over its TRL trainer (sft, dpo, rm, rlvr), each owning
              what is particular to it (the hooks in stages/__init__.py)
- training/   the runner: a recipe to TRL arguments, inputs resolved, checkpoints, the manifest
- grid/       the learning-rate x batch-size ablation: its runs, evaluation and Figure 1
- verifiers.py, if_rewards.py: RLVR's verifiable rewards (GSM8K, MATH, IFEval)
- cli.py      `python -m repro`

repro stands on core (recipes, lock, models, plumbing) and on evalsuite (the grid evaluates its
points); neither imports repro.
"""

__version__ = "0.1.0"
