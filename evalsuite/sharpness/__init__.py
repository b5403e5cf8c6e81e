"""Sharpness of a checkpoint's training loss: the top Hessian eigenvalue and Keskar's ε-sharpness.

- measure.py  the estimators (power iteration on Hessian-vector products, ε-sharpness by box-constrained
              ascent) and the SFT-stage loss on a fixed, seeded batch of the stage's own data
- record.py   the sharpness file (`smoltulu-sharpness/1`): written beside results, read by report/
- cmd.py      `python -m evalsuite sharpness`

Import rules (tests/test_layout.py): results.py, harness.run_folder (the model identity results
carry) and repro; report reads record.py only.
"""
