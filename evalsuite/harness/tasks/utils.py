"""lm-eval resolves `!function utils.x` against this file; the protocol is evalsuite.harness.protocol."""

from evalsuite.harness.protocol import *  # noqa: F403
