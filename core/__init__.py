"""What training (repro) and evaluation (evalsuite) both stand on; imports neither.

- locked facts: lock.py (checkpoints.lock: pinned hub revisions and file hashes), recipe.py (the
  recipes in recipes/*.yaml), resolve.py (a name, pin or folder to the files to use)
- model artefacts: model_folder.py (a folder's checks), manifest.py (how a folder was trained),
  tiny.py and real_model.py (the models that exist offline), chat_templates.py, preference.py
  (the chosen/rejected sides of a preference pair)
- plumbing: errors.py (one-line errors, argument types, the CLI wrapper), atomic.py (writes a
  crash cannot half-finish), run_lock.py (one writer per output folder)
- scoring/: the pure scorers both the benchmarks and the RLVR rewards use (IFEval's checks,
  GSM8K's answer extraction)
"""
