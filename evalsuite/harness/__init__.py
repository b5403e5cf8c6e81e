"""Running and scoring the benchmarks: the lm-eval task definitions (tasks/) and their protocol,
benchmark data readers, the HF/vLLM backends, the resumable request cache, results folders, and
`evalsuite score` for outputs made elsewhere. Imports evalsuite.results, evalsuite.benchmarks,
repro and itself only (never reward/ or report/)."""
