"""What the suite accepts as a model folder, checked in one place before anything loads it.

The resolver (core.resolve) runs `check` on every model it hands out, local folder, finished
run or hub snapshot, and `python -m repro NAME --from DIR` runs it on DIR, so training and
evaluation refuse the same folders with the same one-line error:

- no config.json, or one that is not a JSON object naming a model_type transformers knows;
- remote code: `auto_map` in config.json or tokenizer_config.json (the suite loads with
  trust_remote_code=False and never runs code shipped with a model);
- weights other than safetensors only (README: safetensors only; pickle `.bin`/`.pt` files can
  run code when loaded), none at all, a shard the index names that is missing, or a safetensors
  file whose header does not describe the file (truncated, torn or not safetensors);
- weights that do not match config.json: a parameter the architecture needs that no shard holds
  (transformers would initialise it at random and carry on), or a tensor no parameter takes;
- no tokenizer files.

Only safetensors headers are read (the tensors are memory-mapped, never loaded), and the expected
parameter names come from the architecture built on the meta device (no memory), so the check
costs well under a second even for a sharded 8B model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.errors import UsageError, json_loads

SAFETENSORS_INDEX = "model.safetensors.index.json"
# Files any transformers tokenizer is built from (fast: tokenizer.json; slow: a vocabulary).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
)
# Weights in formats the suite does not load (pickles can execute code when unpickled).
OTHER_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.h5", "*.msgpack", "*.gguf")
NOT_WEIGHTS = {"training_args.bin"}  # Trainer's pickled arguments, beside the weights of a checkpoint


def _json_value(path: Path, folder: Path) -> Any:
    try:
        return json_loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else exc.__class__.__name__
        raise UsageError(f"{folder}: {path.name} is not readable JSON ({reason})") from None


def _json_object(path: Path, folder: Path) -> dict[str, Any]:
    value = _json_value(path, folder)
    if not isinstance(value, dict):
        raise UsageError(f"{folder}: {path.name} is not a JSON object")
    return value


def _known_model_types() -> set[str]:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return set(CONFIG_MAPPING_NAMES)


def _check_config(folder: Path) -> None:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise UsageError(f"{folder}: not a model folder (no config.json)")
    config = _json_object(config_path, folder)
    for other in sorted(folder.glob("*.json")):  # transformers reads them all; damage named here, first
        _json_value(other, folder)
    tokenizer_config = folder / "tokenizer_config.json"
    for path, found in ((config_path, config), (tokenizer_config, None)):
        if found is None:
            if not path.is_file():
                continue
            found = _json_object(path, folder)
        if found.get("auto_map"):
            classes = ", ".join(sorted(str(v) for v in _flat(found["auto_map"])))
            raise UsageError(
                f"{folder}: {path.name} asks for remote code (auto_map: {classes}); the suite never runs "
                "code shipped with a model (trust_remote_code=False): use a model transformers implements"
            )
    if tokenizer_config.is_file():
        template = _json_object(tokenizer_config, folder).get("chat_template")
        named = isinstance(template, list) and all(
            isinstance(t, dict) and isinstance(t.get("template"), str) for t in template
        )
        if template is not None and not isinstance(template, str) and not named:
            raise UsageError(
                f"{folder}: chat_template in tokenizer_config.json is a {type(template).__name__}, not a "
                "template (text, or a list of {name, template}); fix or remove it"
            )
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise UsageError(f"{folder}: config.json names no model_type")
    if model_type not in _known_model_types():
        import transformers

        raise UsageError(
            f"{folder}: model_type {model_type!r} is not implemented by transformers "
            f"{transformers.__version__} (the suite never runs remote code)"
        )


def _flat(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flat(v)]
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _flat(v)]
    return [value]


def _weight_files(folder: Path) -> list[Path]:
    index = folder / SAFETENSORS_INDEX
    if index.is_file():
        weight_map = _json_object(index, folder).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise UsageError(f"{folder}: {SAFETENSORS_INDEX} has no weight_map")
        shards = [folder / str(name) for name in sorted(set(weight_map.values()))]
        missing = [p.name for p in shards if not p.is_file()]
        if missing:
            raise UsageError(
                f"{folder}: weight shards named by {SAFETENSORS_INDEX} are missing: {', '.join(missing)} "
                "(an unfinished download or copy?)"
            )
        return shards
    shards = sorted(folder.glob("*.safetensors"))
    if shards:
        return shards
    others = sorted(
        p.name for pattern in OTHER_WEIGHTS for p in folder.glob(pattern) if p.name not in NOT_WEIGHTS
    )
    if others:
        raise UsageError(
            f"{folder}: weights only as {', '.join(others)}; the suite loads safetensors only (pickled "
            "weights can run code): convert them, e.g. save_pretrained(DIR, safe_serialization=True)"
        )
    raise UsageError(f"{folder}: no model weights (no *.safetensors file)")


def _check_weights(folder: Path) -> set[str]:
    """Every shard whole; returns the tensor names the shards hold."""
    from safetensors import safe_open

    names: set[str] = set()
    for shard in _weight_files(folder):
        try:
            with safe_open(str(shard), framework="numpy") as handle:
                names.update(handle.keys())
        except Exception as exc:  # safetensors raises its own SafetensorError, or OSError
            reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            raise UsageError(
                f"{folder}: {shard.name} is not a whole safetensors file ({reason}): truncated or torn "
                "by an interrupted write or download; fetch or copy it again"
            ) from None
    return names


def _expected_parameters(folder: Path) -> tuple[list[set[str]], str, list[str]]:
    """The architecture's parameters from config.json, built on the meta device: one set of names
    per tensor (tied weights share one), the base-model prefix, and the class's ignore patterns."""
    import torch
    import transformers

    config = transformers.AutoConfig.from_pretrained(folder, trust_remote_code=False)
    names = [a for a in (getattr(config, "architectures", None) or []) if isinstance(a, str)]
    cls = getattr(transformers, names[0], None) if names else None
    if cls is None or not hasattr(cls, "_from_config"):
        cls = transformers.AutoModelForCausalLM
    with torch.device("meta"):
        model = (
            cls.from_config(config) if cls is transformers.AutoModelForCausalLM else cls._from_config(config)
        )
    model.tie_weights()
    groups: dict[int, set[str]] = {}
    for name, tensor in [*model.named_parameters(remove_duplicate=False), *model.named_buffers()]:
        groups.setdefault(id(tensor), set()).add(name)
    persistent = set(model.state_dict())
    sets = [{n for n in g if n in persistent} for g in groups.values()]
    ignore = [
        *(getattr(model, "_keys_to_ignore_on_load_unexpected", None) or []),
        *(getattr(model, "_keys_to_ignore_on_load_missing", None) or []),
    ]
    return [g for g in sets if g], str(getattr(model, "base_model_prefix", "") or ""), ignore


def _check_parameters(folder: Path, stored: set[str]) -> None:
    """Refuse weights that leave a parameter of the architecture unfilled, or hold extra tensors."""
    import re

    try:
        expected, prefix, ignore = _expected_parameters(folder)
    except Exception as exc:  # a value of the wrong type or range: transformers' own validation, or worse
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise UsageError(
            f"{folder}: config.json does not build a model ({exc.__class__.__name__}: {reason[:300]}); "
            "use the config.json saved with these weights"
        ) from None

    def bare(name: str) -> str:
        return name.removeprefix(prefix + ".") if prefix else name

    have = {bare(n) for n in stored}
    missing = sorted(min(g) for g in expected if not any(bare(n) in have for n in g))
    known = {bare(n) for g in expected for n in g}
    extra = sorted(n for n in have if n not in known and not any(re.search(p, n) for p in ignore))
    missing = [n for n in missing if not any(re.search(p, n) for p in ignore)]
    if missing or extra:
        said = []
        if missing:
            said.append(
                f"{len(missing)} parameters config.json needs are in no weight file "
                f"({', '.join(missing[:3])})"
            )
        if extra:
            said.append(f"{len(extra)} tensors fit no parameter ({', '.join(extra[:3])})")
        raise UsageError(
            f"{folder}: the weights do not match config.json: {'; '.join(said)}; they would be left "
            "randomly initialised or dropped. Use the config.json saved with these weights"
        )


def _check_tokenizer(folder: Path) -> None:
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise UsageError(
            f"{folder}: no tokenizer (none of {', '.join(TOKENIZER_FILES)}); save the tokenizer "
            "with the model (tokenizer.save_pretrained(DIR))"
        )


def check(folder: Path) -> Path:
    """Refuse, with one line, a folder the suite must not load as a model; return it unchanged."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such directory")
    _check_config(folder)
    _check_parameters(folder, _check_weights(folder))
    _check_tokenizer(folder)
    return folder
