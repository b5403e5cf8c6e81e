"""The training runner: a recipe and a profile to TRL arguments, a trainer, checkpoints and a manifest."""
