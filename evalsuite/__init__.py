"""Evaluation of SmolTulu-style models with the SmolLM2/lighteval protocol the paper used."""
