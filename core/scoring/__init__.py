"""Pure scorers shared by the benchmarks (evalsuite.harness) and the RLVR rewards (repro.verifiers)."""
