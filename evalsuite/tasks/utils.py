"""lm-eval resolves `!function utils.x` against this file; the protocol lives in evalsuite.protocol."""

from evalsuite.protocol import *  # noqa: F403
