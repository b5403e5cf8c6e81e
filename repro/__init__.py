"""SmolTulu reproduction: locked Tulu 3 recipes for SmolLM2 on TRL."""

__version__ = "0.1.0"
