"""The learning-rate x batch-size grid (the paper's ablation): its runs, evaluation and Figure 1."""
