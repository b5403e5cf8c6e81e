"""The ready accelerate configs parse and describe the engines the training docs document."""

from __future__ import annotations

import pytest
import yaml
from conftest import ROOT

EXPECTED = {"single_gpu": "NO", "ddp": "MULTI_GPU", "zero3": "DEEPSPEED", "fsdp": "FSDP"}


@pytest.mark.parametrize(("name", "kind"), sorted(EXPECTED.items()))
def test_config_loads_in_accelerate(name: str, kind: str) -> None:
    from accelerate.commands.config.config_args import ClusterConfig

    path = ROOT / "accelerate" / f"{name}.yaml"
    assert yaml.safe_load(path.read_text())["distributed_type"] == kind
    config = ClusterConfig.from_yaml_file(str(path))
    assert str(config.distributed_type).endswith(kind) and config.mixed_precision == "bf16"
    assert f"{name}.yaml" in (ROOT / "docs" / "training.md").read_text()
