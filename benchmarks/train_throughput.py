"""`python -m benchmarks.train_throughput`: training tokens/s per stage, and the choices that speed it.

Every run goes through the suite's own stage code (repro.stages.*.build on the recipe's TRL
arguments from repro.training.trl_args), one epoch over synthetic conversations whose token lengths
follow the Tulu 3 SFT mixture (benchmarks/lengths.py says how that distribution was obtained).
Compared side by side in one process, so the ratios hold on a noisy machine:

  SFT  padded | padding-free (the recipe: same batches, no pad tokens) | packed (TRL bfd bins)
  DPO  reference log-probs precomputed once (the recipe) | live reference model every step
  RM   the recipe

tokens/s counts the real (non-pad) tokens of the epoch. MFU = 6·N·tokens / time / peak: on a
GPU against the data-sheet bf16 peak, on CPU against the measured fp32 matmul peak (labelled).
Padding-free and padded see the same sequences in the same steps, so their losses must agree:
the script prints the largest per-step difference as the evidence that the result is unchanged.

CPU default: the embedded "small" model in fp32; on a GPU, `--model-size 1.7b` (SmolLM2-1.7B's
configuration, random weights, bf16). `--sft-variants`/`--dpo-variants` time a subset, and
`--budget-s` starts no variant after that many seconds (the JSON, rewritten after each variant,
names the skipped ones): `python -m benchmarks.gpu_suite` uses both.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks import common, lengths, synthetic
from benchmarks.models import build_model

SFT_VARIANTS: dict[str, dict[str, Any]] = {
    "padded": {"padding_free": False},
    "padding-free": {"padding_free": True},  # the recipe's choice
    "packed-bfd": {"packing": True, "packing_strategy": "bfd"},
}
DPO_VARIANTS: dict[str, dict[str, Any]] = {
    "cached-reference": {"precompute_ref_log_probs": True},
    "live-reference": {"precompute_ref_log_probs": False},
}


def trl_config(recipe_name: str, per_device: int, out: Path, gpu: bool, **changes: Any) -> Any:
    """The recipe's TRL config for one epoch on this device, with `changes` on top."""
    from core import recipe
    from core.recipe import BatchPlan
    from repro.training import trl_args

    rec = recipe.load(recipe_name)
    plan = BatchPlan(effective=per_device, world_size=1, per_device=per_device, grad_accum=1)
    kwargs = trl_args.trl_kwargs(rec, plan, str(out))
    kwargs.update(
        num_train_epochs=1, save_strategy="no", disable_tqdm=True, bf16=gpu, use_cpu=not gpu, **changes
    )
    return trl_args.config_class(rec.stage)(**kwargs)


def recipe_max_length(recipe_name: str) -> int:
    from core import recipe

    return int(recipe.load(recipe_name).hp("max_length"))


def epoch_tokens(stage: str, dataset: Any) -> int:
    """Real tokens one epoch feeds the policy (pairs: both whole conversations, as the stages tokenize)."""
    if stage == "sft":
        return sum(len(ids) for ids in dataset["input_ids"])
    return sum(len(c) + len(r) for c, r in zip(dataset["chosen_ids"], dataset["rejected_ids"], strict=True))


@contextmanager
def timed_precompute(record: dict[str, float]):
    """Time TRL's one-off reference pass (it runs inside DPOTrainer.__init__)."""
    from trl import DPOTrainer

    original = DPOTrainer._precompute_ref_logps

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            record["precompute_seconds"] = record.get("precompute_seconds", 0.0) + time.perf_counter() - t0

    DPOTrainer._precompute_ref_logps = wrapper
    try:
        yield
    finally:
        DPOTrainer._precompute_ref_logps = original


def run_stage(stage: str, model: Path, rows: list[dict[str, Any]], config: Any) -> dict[str, Any]:
    """Build the stage's trainer as `python -m repro` does, train one epoch, time it."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    from repro import stages

    tokenizer = AutoTokenizer.from_pretrained(model)
    record: dict[str, Any] = {}
    with timed_precompute(record):
        t0 = time.perf_counter()
        trainer = stages.module(stage).build(model, tokenizer, Dataset.from_list(rows), config)
        t1 = time.perf_counter()
        trainer.train()
        t2 = time.perf_counter()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    record.update(
        build_seconds=round(t1 - t0, 3),
        train_seconds=round(t2 - t1, 3),
        steps=trainer.state.global_step,
        rows=len(trainer.train_dataset),
        tokens=epoch_tokens(stage, trainer.train_dataset),
        step_losses=losses,
    )
    record["tokens_per_s"] = record["tokens"] / record["train_seconds"]
    return record


def mfu(record: dict[str, Any], n_params: int, peak: float) -> float:
    return 6 * n_params * record["tokens"] / record["train_seconds"] / peak


def _chosen(text: str | None, known: dict[str, Any], flag: str, parser: argparse.ArgumentParser) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()] if text else list(known)
    if not names or set(names) - set(known):
        parser.error(f"{flag} {text!r}: choose from {', '.join(known)}")
    return [n for n in known if n in names]  # the table's order: the first row is the ratios' base


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.train_throughput",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model-size",
        choices=("tiny", "small", "1.7b"),
        default=None,
        help="random model to time: small (CPU default), 1.7b (GPU default; SmolLM2-1.7B's config), tiny",
    )
    parser.add_argument("--sft-conversations", type=int, default=48, help="SFT rows per epoch (default: 48)")
    parser.add_argument("--pairs", type=int, default=32, help="DPO/RM pairs per epoch (default: 32)")
    parser.add_argument("--batch-size", type=int, default=8, help="per-device sequences a step (default: 8)")
    parser.add_argument("--seed", type=int, default=0, help="for the drawn lengths and texts")
    parser.add_argument("--stages", default="sft,dpo,rm", help="comma-separated subset of sft,dpo,rm")
    parser.add_argument("--sft-variants", help=f"subset of {','.join(SFT_VARIANTS)} (default: all)")
    parser.add_argument("--dpo-variants", help=f"subset of {','.join(DPO_VARIANTS)} (default: all)")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="start no variant after this many seconds (default: none)",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON (default: benchmarks/results/…)")
    args = parser.parse_args(argv)
    sft_variants = _chosen(args.sft_variants, SFT_VARIANTS, "--sft-variants", parser)
    dpo_variants = _chosen(args.dpo_variants, DPO_VARIANTS, "--dpo-variants", parser)
    started = time.monotonic()
    skipped: list[str] = []

    def over_budget(name: str) -> bool:
        if args.budget_s is not None and time.monotonic() - started > args.budget_s:
            print(f"{name}: skipped, the --budget-s {args.budget_s:g} s is used", flush=True)
            skipped.append(name)
            return True
        return False

    gpu = common.device() == "cuda"
    size = args.model_size or ("1.7b" if gpu else "small")
    peaks = common.measured_peaks()
    peak = peaks["spec"]["peak_flops"] if gpu and peaks.get("spec") else peaks["peak_flops_measured"]
    peak_label = (
        "data-sheet bf16 peak" if gpu and peaks.get("spec") else f"measured {peaks['dtype']} matmul peak"
    )
    dist = lengths.distribution()
    todo = [s.strip() for s in args.stages.split(",") if s.strip()]
    if not todo or set(todo) - {"sft", "dpo", "rm"}:
        parser.error(f"--stages {args.stages!r}: choose from sft, dpo, rm")
    results: dict[str, Any] = {}
    n_params = 0

    def save(final: bool) -> None:
        """The record so far (rewritten after each variant, so a killed run leaves its figures)."""
        for stage in results.values():
            for record in stage["variants"].values():
                record["mfu"] = mfu(record, n_params, peak)
        summary = report(results, peak_label) if final else {}
        common.write(
            "train_throughput",
            {
                "settings": {
                    "model": f"random {size}",
                    "parameters": n_params,
                    "batch_size": args.batch_size,
                    "sft_conversations": args.sft_conversations,
                    "pairs": args.pairs,
                    "seed": args.seed,
                    "lengths": {k: v for k, v in dist.items() if k != "lengths"},
                    "precision": "bf16" if gpu else "fp32",
                    "mfu_peak": peak_label,
                    "budget_s": args.budget_s,
                },
                "peaks": peaks,
                "stages": results,
                "skipped": skipped,
                "complete": final,
                "summary": summary,
            },
            args.out,
        )

    with tempfile.TemporaryDirectory(prefix="train-throughput-") as tmp:
        model = build_model(Path(tmp) / "model", size)
        n_params = common.model_parameters(model)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model)
        print(
            f"model: random {size} ({n_params / 1e6:.2f}M params) on {peaks['device']}; "
            f"lengths: {dist['source']}"
        )

        if "sft" in todo:
            cap = recipe_max_length("sft-1130") - 16  # room for the last word drawn
            drawn = lengths.sample(args.sft_conversations, cap, args.seed, dist)
            rows = synthetic.sft_rows(tokenizer, drawn, dist["prompt_fraction"], args.seed)
            packed_batch = max(1, round(args.batch_size * sum(drawn) / len(drawn) / (cap + 16)))
            results["sft"] = {"lengths": lengths.summary(drawn), "variants": {}}
            for name in sft_variants:
                if over_budget(f"sft {name}"):
                    continue
                per_device = packed_batch if name == "packed-bfd" else args.batch_size
                print(f"SFT {name} ...", flush=True)
                config = trl_config("sft-1130", per_device, Path(tmp) / "run", gpu, **SFT_VARIANTS[name])
                results["sft"]["variants"][name] = run_stage("sft", model, rows, config)
                results["sft"]["variants"][name]["per_device_batch"] = per_device
                save(final=False)

        if "dpo" in todo or "rm" in todo:
            cap = recipe_max_length("dpo-1130") - 16
            drawn = lengths.sample(args.pairs, cap // 2, args.seed + 1, dist)  # chosen and rejected share it
            pairs = synthetic.preference_rows(tokenizer, drawn, dist["prompt_fraction"], args.seed + 1)
        if "dpo" in todo:
            results["dpo"] = {"variants": {}}
            for name in dpo_variants:
                if over_budget(f"dpo {name}"):
                    continue
                print(f"DPO {name} ...", flush=True)
                config = trl_config("dpo-1130", args.batch_size, Path(tmp) / "run", gpu, **DPO_VARIANTS[name])
                results["dpo"]["variants"][name] = run_stage("dpo", model, pairs, config)
                save(final=False)
        if "rm" in todo and not over_budget("rm recipe"):
            print("RM ...", flush=True)
            config = trl_config("rm-1130", args.batch_size, Path(tmp) / "run", gpu)
            results["rm"] = {"variants": {"recipe": run_stage("rm", model, pairs, config)}}

    save(final=True)
    return 0


def report(results: dict[str, Any], peak_label: str) -> dict[str, float]:
    """Print each stage's variants side by side; return the ratios the README's targets name."""
    summary: dict[str, float] = {}
    for stage, block in results.items():
        variants = block["variants"]
        if not variants:
            continue
        first = next(iter(variants.values()))
        print(f"\n{stage.upper()}" + (f"  lengths {block['lengths']}" if "lengths" in block else ""))
        print(
            f"{'variant':18} {'steps':>5} {'build s':>8} {'train s':>8} "
            f"{'tokens/s':>9} {'ratio':>6} {'MFU':>7}"
        )
        for name, r in variants.items():
            ratio = r["tokens_per_s"] / first["tokens_per_s"]
            print(
                f"{name:18} {r['steps']:5d} {r['build_seconds']:8.1f} {r['train_seconds']:8.1f} "
                f"{r['tokens_per_s']:9.0f} {ratio:5.2f}x {100 * r['mfu']:6.2f}%"
            )
    print(f"(MFU against the {peak_label}; ratio against the first row)")
    v = results.get("sft", {}).get("variants", {})
    if "padding-free" in v:
        summary["sft_padding_free_mfu"] = v["padding-free"]["mfu"]
        summary["sft_padding_free_tokens_per_s"] = v["padding-free"]["tokens_per_s"]
    if "dpo" in results and "cached-reference" in results["dpo"]["variants"]:
        summary["dpo_mfu"] = results["dpo"]["variants"]["cached-reference"]["mfu"]
        summary["dpo_tokens_per_s"] = results["dpo"]["variants"]["cached-reference"]["tokens_per_s"]
    if set(SFT_VARIANTS) <= set(v):
        summary["sft_packed_over_padded"] = v["packed-bfd"]["tokens_per_s"] / v["padded"]["tokens_per_s"]
        summary["sft_padding_free_over_padded"] = (
            v["padding-free"]["tokens_per_s"] / v["padded"]["tokens_per_s"]
        )
        a, b = v["padded"]["step_losses"], v["padding-free"]["step_losses"]
        summary["sft_padding_free_max_loss_difference"] = max(abs(x - y) for x, y in zip(a, b, strict=True))
        summary["sft_padded_mfu"] = v["padded"]["mfu"]
        print(
            f"SFT packed (bfd) / padded: {summary['sft_packed_over_padded']:.2f}x (CPU target >= 1.5x); "
            f"padding-free / padded: {summary['sft_padding_free_over_padded']:.2f}x, same batches, largest "
            f"per-step loss difference {summary['sft_padding_free_max_loss_difference']:.2e}"
        )
    if set(DPO_VARIANTS) <= set(results.get("dpo", {}).get("variants", {})):
        v = results["dpo"]["variants"]
        cached, live = v["cached-reference"], v["live-reference"]
        pre = cached.get("precompute_seconds", 0.0)
        summary["dpo_cached_over_live_epoch"] = live["train_seconds"] / cached["train_seconds"]
        summary["dpo_cached_over_live_first_epoch"] = live["train_seconds"] / (cached["train_seconds"] + pre)
        print(
            f"DPO cached / live reference: {summary['dpo_cached_over_live_epoch']:.2f}x an epoch "
            f"(CPU target >= 1.3x); {summary['dpo_cached_over_live_first_epoch']:.2f}x for the first epoch "
            f"counting the one-off reference pass ({pre:.1f} s)"
        )
    return summary


if __name__ == "__main__":
    raise SystemExit(main())
