"""Sharpness (issue 21): the estimators against exact answers, the SFT batch, the sharpness file, and
claims 12-14 judged on constructed grids in both directions.

Exact answers are derived independently of the estimators: eigenvalues of matrices built from a
chosen spectrum, numpy/torch eigvalsh of a Hessian formed whole with torch.func.hessian, closed
forms of a quadratic's maximum over Keskar's box and a brute force over the box's corners.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from core import manifest
from core.errors import UsageError
from evalsuite import results as results_fmt
from evalsuite.report import analysis, claims, reported, result_set, sharpness_figure, simulate
from evalsuite.sharpness import cmd, measure
from evalsuite.sharpness import record as record_io

ROOT = Path(__file__).resolve().parents[1]
SMOKE_SFT = ROOT / "repro" / "data" / "smoke" / "sft.jsonl"
RESAMPLES = 2000

# --------------------------------------------------------------------------- power iteration


def _quadratic_hvp(a: torch.Tensor):
    return lambda v: {"x": a @ v["x"]}


def _with_spectrum(values: list[float], seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(values), len(values), generator=gen, dtype=torch.float64))
    return q @ torch.diag(torch.tensor(values, dtype=torch.float64)) @ q.T


def test_power_iteration_finds_a_quadratics_top_eigenvalue() -> None:
    # f(x) = ½ xᵀAx has Hessian A; its spectrum is chosen, so the answer is known: 5
    a = _with_spectrum([5.0, 3.0, 1.0, 0.5, -0.2, 0.0])
    got = measure.power_iteration(
        _quadratic_hvp(a), {"x": torch.zeros(6, dtype=torch.float64)}, tolerance=1e-12, max_iterations=500
    )
    assert got.converged and got.eigenvalue == pytest.approx(5.0, rel=1e-9)
    assert len(got.trace) == got.iterations == len(got.relative_change)
    assert got.relative_change[0] is None and got.relative_change[-1] < 1e-12


def test_power_iteration_reports_the_top_eigenvalue_and_says_when_it_stopped_short() -> None:
    a = _with_spectrum([2.0, 1.0, -4.0])  # away from a minimum the dominant eigenvalue can be negative
    got = measure.power_iteration(
        _quadratic_hvp(a), {"x": torch.zeros(3, dtype=torch.float64)}, tolerance=1e-12, max_iterations=500
    )
    assert got.converged and got.eigenvalue == pytest.approx(2.0, rel=1e-9)  # past -4, by a shift
    assert min(got.trace) == pytest.approx(-4.0, rel=1e-9)  # the first phase found the dominant one
    short = measure.power_iteration(
        _quadratic_hvp(_with_spectrum([1.0, 0.99, 0.1])),
        {"x": torch.zeros(3, dtype=torch.float64)},
        max_iterations=2,
        tolerance=1e-12,
    )
    assert not short.converged and short.iterations == 2
    seeded = [
        measure.power_iteration(_quadratic_hvp(a), {"x": torch.zeros(3, dtype=torch.float64)}, seed=7).trace
        for _ in range(2)
    ]
    assert seeded[0] == seeded[1]


def _tiny_llama() -> torch.nn.Module:
    """A LlamaForCausalLM of 164 parameters: small enough to form its Hessian whole."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=8,
        hidden_size=4,
        intermediate_size=6,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=2,
        max_position_embeddings=16,
        tie_word_embeddings=True,
        attn_implementation="eager",
    )
    model = LlamaForCausalLM(config).double().eval()
    for p in model.parameters():  # weights of order 1: a Hessian with a clear top eigenvalue
        torch.nn.init.normal_(p, std=0.7)
    return model


def _tiny_batch() -> measure.Batch:
    gen = torch.Generator().manual_seed(1)
    micro = []
    for rows, width in ((2, 7), (1, 5)):  # two micro-batches of different widths, like real ones
        ids = torch.randint(0, 8, (rows, width), generator=gen)
        labels = ids.clone()
        labels[:, :2] = -100  # a "prompt" without loss
        micro.append(measure.MicroBatch(ids, torch.ones_like(ids), labels))
    tokens = sum(int((m.labels[:, 1:] != -100).sum()) for m in micro)
    return measure.Batch(micro, tokens, ["a", "b", "c"])


def test_hvp_power_iteration_matches_the_exact_hessian_of_a_tiny_model() -> None:
    model, batch = _tiny_llama(), _tiny_batch()
    loss = measure.SFTLoss(model, batch, torch.device("cpu"))
    names = list(loss.params)
    shapes = [loss.params[k].shape for k in names]
    sizes = [loss.params[k].numel() for k in names]
    assert 100 < sum(sizes) < 400

    def flat_loss(x: torch.Tensor) -> torch.Tensor:  # the same f, written independently, on one vector
        params = {k: t.reshape(s) for k, t, s in zip(names, torch.split(x, sizes), shapes, strict=True)}
        total = torch.zeros((), dtype=torch.float64)
        for m in batch.micro:
            logits = torch.func.functional_call(model, params, (m.input_ids,)).logits
            lp = torch.log_softmax(logits[:, :-1], dim=-1)
            target = m.labels[:, 1:]
            keep = target != -100
            total = total - lp.gather(-1, target.clamp(min=0)[..., None])[..., 0][keep].sum()
        return total / batch.loss_tokens

    x0 = torch.cat([loss.params[k].reshape(-1) for k in names])
    hessian = torch.func.hessian(flat_loss)(x0)
    eig = torch.linalg.eigvalsh((hessian + hessian.T) / 2)
    dominant = float(eig[eig.abs().argmax()])
    assert abs(dominant) > 1.5 * float(eig.abs().sort().values[-2])  # a gap: power iteration converges

    value, grad = loss.value_and_grad(loss.params)
    assert value == pytest.approx(float(flat_loss(x0)), rel=1e-12)
    flat_grad = torch.func.grad(flat_loss)(x0)
    assert torch.allclose(torch.cat([grad[k].reshape(-1) for k in names]), flat_grad, atol=1e-12)
    # Lanczos finds the top eigenvalue; stated tolerance: 1e-6 relative (LlamaRMSNorm computes in float32,
    # so the Hessian-vector products of this float64 model carry ~1e-7 noise: a residual floor)
    fast = measure.lanczos(loss.hvp, loss.params, tolerance=1e-6, max_iterations=400)
    assert fast.converged and fast.eigenvalue == pytest.approx(float(eig.max()), rel=1e-6)
    # power iteration: the dominant eigenvalue (negative here) first, then a shifted run towards the top,
    # whose shifted gap is small: within this budget it must say "not converged", never a wrong value
    got = measure.power_iteration(loss.hvp, loss.params, tolerance=1e-6, max_iterations=150)
    assert dominant < 0 and min(got.trace) == pytest.approx(dominant, rel=1e-6)
    assert (
        got.eigenvalue == pytest.approx(float(eig.max()), rel=1e-6)
        if got.converged
        else got.residual[-1] > 1e-6
    )


ESTIMATORS = (measure.power_iteration, measure.lanczos)
# Spectra that fool a stop on the estimate's change (the old rule: a ±5 pair gave -4.78 "converged",
# a 10 / 9.95 gap 9.950 "converged"), each with the top eigenvalue it must report or call unconverged.
HARD = {
    "plus-minus pair": ([5.0, -5.0, 1.0, 0.5, 0.1, -0.3, 0.0, 2.0], 5.0),
    "small gap": ([10.0, 9.95, 3.0, 1.0, 0.5, -1.0, 0.2, 0.0], 10.0),
    "negative dominant": ([3.0, -8.0, 2.9, 1.0, 0.0, -1.0, 0.4, 0.2], 3.0),
}


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("case", HARD)
def test_a_converged_eigenvalue_is_never_wrong(estimator: Any, case: str) -> None:
    spectrum, top = HARD[case]
    like = {"x": torch.zeros(len(spectrum), dtype=torch.float64)}
    for seed in range(6):
        a = _with_spectrum(spectrum, seed=seed)
        got = estimator(_quadratic_hvp(a), like, tolerance=1e-3, max_iterations=100, seed=seed)
        if got.converged:  # within the tolerance of the top, or said not to be converged
            assert got.eigenvalue == pytest.approx(top, rel=1e-3), (case, seed, got.eigenvalue)


def test_power_iteration_says_a_plus_minus_pair_never_converges_and_lanczos_separates_it() -> None:
    spectrum, top = HARD["plus-minus pair"]
    like = {"x": torch.zeros(len(spectrum), dtype=torch.float64)}
    for seed in range(4):
        hvp = _quadratic_hvp(_with_spectrum(spectrum, seed=seed))
        power = measure.power_iteration(hvp, like, tolerance=1e-3, max_iterations=100, seed=seed)
        assert not power.converged and power.iterations == 100 and power.residual[-1] > 1e-3
        got = measure.lanczos(hvp, like, tolerance=1e-6, max_iterations=100, seed=seed)
        assert got.converged and got.method == "lanczos" and got.eigenvalue == pytest.approx(top, rel=1e-6)
        assert got.residual[-1] < 1e-6 and got.iterations <= 100


def test_lanczos_on_a_small_gap_and_on_too_small_a_budget() -> None:
    spectrum, top = HARD["small gap"]
    hvp = _quadratic_hvp(_with_spectrum(spectrum + [0.01 * i for i in range(40)], seed=1))
    like = {"x": torch.zeros(len(spectrum) + 40, dtype=torch.float64)}
    got = measure.lanczos(hvp, like, tolerance=1e-8, max_iterations=200)
    assert got.converged and got.eigenvalue == pytest.approx(top, rel=1e-8)
    short = measure.lanczos(hvp, like, tolerance=1e-8, max_iterations=3)
    assert not short.converged and short.iterations <= 3


def test_the_measure_uses_lanczos_when_its_basis_fits_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    hvp, like = _quadratic_hvp(_with_spectrum([4.0, 1.0, 0.5])), {"x": torch.zeros(3, dtype=torch.float64)}
    assert measure.top_eigenvalue(hvp, like, tolerance=1e-9).method == "lanczos"
    monkeypatch.setattr(measure, "LANCZOS_MEMORY", 8)  # a model too large for the Krylov basis
    got = measure.top_eigenvalue(hvp, like, tolerance=1e-9, max_iterations=500)
    assert got.method == "power" and got.eigenvalue == pytest.approx(4.0, rel=1e-8)


# --------------------------------------------------------------------------- ε-sharpness


def _quadratic_value_and_grad(a: torch.Tensor):
    def f(p: dict[str, torch.Tensor]) -> tuple[float, dict[str, torch.Tensor]]:
        x = p["x"]
        return float(0.5 * x @ a @ x), {"x": a @ x}

    return f


def _phi(f_max: float, f0: float) -> float:
    return 100.0 * (f_max - f0) / (1.0 + f0)


def test_epsilon_sharpness_of_a_diagonal_quadratic_has_its_closed_form() -> None:
    # each coordinate is maximised at the far edge: |x_i| + ε(|x_i| + 1)
    diag = torch.tensor([3.0, 1.0, 0.5, 2.0], dtype=torch.float64)
    x = torch.tensor([0.4, -1.5, 0.0, 2.0], dtype=torch.float64)
    eps = 1e-2
    got = measure.epsilon_sharpness(
        _quadratic_value_and_grad(torch.diag(diag)), {"x": x}, epsilon=eps, steps=5, seed=3
    )
    f0 = float(0.5 * (diag * x**2).sum())
    f_max = float(0.5 * (diag * (x.abs() + eps * (x.abs() + 1)) ** 2).sum())
    assert got.value == pytest.approx(_phi(f_max, f0), rel=1e-9)
    assert got.loss == pytest.approx(f0) and len(got.trace) == 6


def test_epsilon_sharpness_of_a_rank_one_quadratic_and_a_brute_force_bound() -> None:
    u = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0], dtype=torch.float64)
    eps = 1e-3
    got = measure.epsilon_sharpness(
        _quadratic_value_and_grad(torch.outer(u, u)), {"x": torch.zeros(5, dtype=torch.float64)}, epsilon=eps
    )
    assert got.value == pytest.approx(_phi(0.5 * (eps * float(u.abs().sum())) ** 2, 0.0), rel=1e-9)
    # a general convex quadratic: its box maximum is at a corner; the ascent never exceeds it
    rng = np.random.default_rng(0)
    m = rng.normal(size=(6, 6))
    a = torch.tensor(m @ m.T)
    x = torch.tensor(rng.normal(size=6))
    width = 0.05 * (x.abs() + 1)
    corners = [x + torch.tensor(s) * width for s in itertools.product((-1.0, 1.0), repeat=6)]
    brute = max(float(0.5 * c @ a @ c) for c in corners)
    f0 = float(0.5 * x @ a @ x)
    got = measure.epsilon_sharpness(_quadratic_value_and_grad(a), {"x": x}, epsilon=0.05, steps=20)
    assert 0.0 < got.value <= _phi(brute, f0) + 1e-9
    assert got.value == pytest.approx(_phi(brute, f0), rel=1e-9)  # here the ascent reaches that corner


def test_epsilon_sharpness_is_a_lower_bound_not_exact_even_for_a_convex_quadratic() -> None:
    rng = np.random.default_rng(1)
    m = rng.normal(size=(6, 6))
    a, x, eps = torch.tensor(m @ m.T), torch.tensor(rng.normal(size=6)), 0.05
    width = eps * (x.abs() + 1)
    corners = [x + torch.tensor(s) * width for s in itertools.product((-1.0, 1.0), repeat=6)]
    f0, brute = float(0.5 * x @ a @ x), max(float(0.5 * c @ a @ c) for c in corners)
    values = [
        measure.epsilon_sharpness(_quadratic_value_and_grad(a), {"x": x}, epsilon=eps, steps=20, seed=s).value
        for s in range(8)
    ]
    assert all(v <= _phi(brute, f0) + 1e-9 for v in values)
    assert any(v < _phi(brute, f0) - 1e-6 for v in values)  # a seed whose ascent stops at a lower corner


# --------------------------------------------------------------------------- the SFT batch


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from core import tiny

    out = tmp_path_factory.mktemp("tiny") / "model"
    tiny.build_tiny_model(out)
    return out


def test_sft_rows_put_the_loss_on_assistant_tokens_only(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    from core import chat_templates

    tok = AutoTokenizer.from_pretrained(tiny_model)
    template = chat_templates.CANDIDATES["chatml"].training()
    conversation = [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4, surely."},
    ]
    batch = measure.sft_rows([conversation], ["r0"], tok, template, micro_batch=4)
    labels = batch.micro[0].labels[0]
    text = tok.decode([int(t) for t in labels if t != -100])
    assert "4, surely." in text and "2+2" not in text and "<|im_end|>" in text
    assert batch.loss_tokens == int((labels[1:] != -100).sum()) and batch.rows == ["r0"]
    with pytest.raises(UsageError, match="no row of the batch"):
        measure.sft_rows([conversation], ["r0"], tok, template, max_length=3)


def test_first_steps_keeps_the_logged_loss_and_gradient_norm() -> None:
    history = [
        {"loss": 2.0 - i / 10, "grad_norm": 5.0 + i, "step": i + 1, "learning_rate": 1e-5} for i in range(60)
    ]
    history.append({"train_runtime": 1.0, "step": 60})  # the end-of-training summary has no loss
    steps = manifest.first_steps(history)
    assert len(steps) == manifest.FIRST_STEPS == 50
    assert steps[0] == {"step": 1, "loss": 2.0, "grad_norm": 5.0}
    assert manifest.first_steps(history, 3)[-1] == {"step": 3, "loss": 1.8, "grad_norm": 7.0}


# --------------------------------------------------------------------------- the command


def test_sharpness_command_writes_a_file_tables_read(tiny_model: Path, tmp_path: Path) -> None:
    from evalsuite.cli import main

    code = main(
        [
            "sharpness",
            "--model",
            str(tiny_model),
            "--data",
            str(SMOKE_SFT),
            "--rows",
            "3",
            "--max-iterations",
            "3",
            "--ascent-steps",
            "1",
            "--output",
            str(tmp_path),
            "--label",
            "tiny",
            "--no-progress",
        ]
    )
    assert code == 0
    path = tmp_path / "sharpness" / "tiny.json"
    raw = json.loads(path.read_text())
    assert raw["format"] == record_io.FORMAT and raw["data"]["rows"] == 3 and raw["data"]["seed"] == 0
    hessian = raw["hessian"]
    assert 1 <= len(hessian["trace"]) <= hessian["iterations"] <= 3 and hessian["method"].startswith(
        "Lanczos"
    )
    assert hessian["converged"] is (hessian["residual"][-1] < hessian["tolerance"])
    assert raw["loss"]["stage"] == "sft" and raw["early"] is None
    from evalsuite.harness import run_folder

    assert raw["model"]["sha256"] == run_folder.model_identity(tiny_model).sha256
    got = record_io.discover([tmp_path])
    assert [m.label for m in got] == ["tiny"] and got[0].point() is None  # not a grid point


def test_a_dpo_run_and_a_model_without_data_are_refused(tiny_model: Path, tmp_path: Path) -> None:
    run = tmp_path / "dpo-run"
    shutil.copytree(tiny_model, run / "final")
    (run / "manifest.json").write_text(json.dumps({"recipe": "dpo-1130", "stage": "dpo"}))
    with pytest.raises(UsageError, match="SFT loss only"):
        cmd.measure_model(str(run), output=tmp_path)
    with pytest.raises(UsageError, match="pass --data"):
        cmd.measure_model(str(tiny_model), output=tmp_path)


def test_a_sharpness_file_of_another_format_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "sharpness" / "x.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(UsageError, match="not a smoltulu-sharpness/1 file"):
        record_io.discover([tmp_path])


# --------------------------------------------------------------------------- claims 12-14


ABLATION = "ablation-135m"


def _sharpness_file(
    root: Path,
    lr: float,
    bs: int,
    eig: float,
    eps: float,
    *,
    profile: str = "real",
    early: list[dict[str, float]] | None = None,
    converged: bool = True,
) -> None:
    record_io.write(
        {
            "model": {"label": f"lr{lr:g}_bs{bs}", "sha256": None},
            "settings": {"ablation": ABLATION, "learning_rate": lr, "batch_size": bs, "profile": profile},
            "loss": {"value": 1.0},
            "hessian": {"top_eigenvalue": eig, "converged": converged},
            "epsilon_sharpness": {"value": eps},
            "early": {"steps": early or []},
        },
        root / "sharpness" / f"lr{lr:g}_bs{bs}.json",
    )


def _results(
    root: Path, lr: float, bs: int, score: float, seed: int, *, profile: str = "real", **kw: Any
) -> None:
    settings = {"ablation": ABLATION, "learning_rate": lr, "batch_size": bs, "profile": profile}
    simulate.write_results(
        root / f"lr{lr:g}_bs{bs}",
        f"lr{lr:g}_bs{bs}",
        {"arc": score, "gsm8k": score},
        seed=seed,
        settings=settings,
        **kw,
    )


def _judge(root: Path, claim_list: list[claims.Claim], scores: reported.ReportedScores) -> dict[int, Any]:
    runs = result_set.load_runs(
        results_fmt.discover([root]), scores, ablation_keys=claims.ablation_keys(claim_list)
    )
    report = analysis.analyse(
        runs, scores, claim_list, analysis.Settings(resamples=RESAMPLES), record_io.discover([root])
    )
    return {c.id: c for c in report.claims}


RATIOS = [(1e-6, 64), (3e-6, 32), (1e-5, 16), (3e-5, 16), (3e-5, 8), (9e-5, 8)]  # six distinct LR/BS, rising


@pytest.mark.parametrize(("direction", "verdict"), [(-1, "supported"), (1, "contradicted")])
def test_claim_12_sharpness_against_the_ratio(tmp_path: Path, claim_list, scores, direction, verdict) -> None:
    for i, (lr, bs) in enumerate(RATIOS):
        _sharpness_file(tmp_path, lr, bs, eig=100.0 + direction * 10 * i, eps=5.0 + direction * 0.5 * i)
    result = _judge(tmp_path, claim_list, scores)[12]
    assert result.verdict == verdict and len(result.checks) == 2
    for check in result.checks:  # perfect order of 6 points: exact p = 2/720
        assert check.n == 6 and check.p_value == pytest.approx(2 / 720)
        assert check.effect == pytest.approx(float(direction))


def test_claim_12_leaves_out_unconverged_eigenvalues_and_smoke_points(
    tmp_path: Path, claim_list, scores
) -> None:
    for i, (lr, bs) in enumerate(RATIOS[:4]):
        _sharpness_file(tmp_path, lr, bs, eig=100.0 - i, eps=5.0 - i, profile="smoke")
    result = _judge(tmp_path, claim_list, scores)[12]
    assert result.verdict == "inconclusive" and result.p_value is None
    eig = result.checks[0]
    assert "4 left out: smoke-profile point" in (eig.reason or "")
    assert eig.effect == pytest.approx(-1.0) and "shown only, never a verdict" in (eig.reason or "")
    _sharpness_file(tmp_path, *RATIOS[4], eig=1.0, eps=1.0, converged=False)
    eig = _judge(tmp_path, claim_list, scores)[12].checks[0]
    assert "1 left out: power iteration not converged" in (eig.reason or "")


GRID_LR, GRID_BS = (1e-5, 3e-5, 9e-5), (8, 16, 32)


@pytest.mark.parametrize(("direction", "verdict"), [(1, "supported"), (-1, "contradicted")])
def test_claim_13_larger_batches_lower_rates(tmp_path: Path, claim_list, scores, direction, verdict) -> None:
    for i, lr in enumerate(GRID_LR):
        for j, bs in enumerate(GRID_BS):  # score rises with BS, falls with LR (direction 1)
            _results(tmp_path, lr, bs, 40.0 + direction * (3.0 * j - 4.0 * i), seed=3 * i + j)
    result = _judge(tmp_path, claim_list, scores)[13]
    assert result.verdict == verdict and len(result.checks) == 4
    for check in result.checks:  # Page's L, 3 blocks x 3 levels, perfect order: one-sided (1/6)^3
        assert check.test == "Page's L" and check.n == 3
        assert check.p_value == pytest.approx(2 * (1 / 6) ** 3)


def test_claim_13_on_a_2x2_smoke_grid_decides_nothing(tmp_path: Path, claim_list, scores) -> None:
    for i, (lr, bs) in enumerate(itertools.product((1e-5, 9e-5), (4, 8))):
        _results(tmp_path, lr, bs, 30.0 + 2 * i, seed=i, profile="smoke", limit=20)
    result = _judge(tmp_path, claim_list, scores)[13]
    assert result.verdict == "inconclusive"
    check = result.checks[0]
    assert "sign test over 2 blocks" in (check.reason or "") and "smallest possible p is 0.5" in (
        check.reason or ""
    )
    assert "no evidence" in (check.reason or "")


def _early(grad: float, loss: float, steps: int = 10) -> list[dict[str, float]]:
    return [{"step": s + 1, "loss": loss, "grad_norm": grad} for s in range(steps)]


@pytest.mark.parametrize(("direction", "verdict"), [(1, "supported"), (-1, "contradicted")])
def test_claim_14_early_signals_rank_the_scores(
    tmp_path: Path, claim_list, scores, direction, verdict
) -> None:
    for i, (lr, bs) in enumerate(RATIOS):
        score = 30.0 + 2 * i
        early = _early(grad=10.0 - direction * i, loss=1.0 + direction * 0.1 * i)
        _results(tmp_path, lr, bs, score, seed=i)
        _sharpness_file(tmp_path, lr, bs, eig=1.0, eps=1.0, early=early)
    result = _judge(tmp_path, claim_list, scores)[14]
    assert result.verdict == verdict and len(result.checks) == 4
    assert all(c.p_value == pytest.approx(2 / 720) and c.n == 6 for c in result.checks)


def test_claim_14_needs_the_steps_it_names(tmp_path: Path, claim_list, scores) -> None:
    for i, (lr, bs) in enumerate(RATIOS):
        _results(tmp_path, lr, bs, 30.0 + 2 * i, seed=i)
        _sharpness_file(tmp_path, lr, bs, eig=1.0, eps=1.0, early=_early(10.0 - i, 1.0 + i, steps=3))
    check = _judge(tmp_path, claim_list, scores)[14].checks[0]
    assert check.verdict == "inconclusive" and "6 left out: only 3 of 10 steps logged" in (check.reason or "")


def test_the_figure_draws_every_grid_point(tmp_path: Path) -> None:
    for i, (lr, bs) in enumerate(RATIOS[:4]):
        _results(tmp_path, lr, bs, 30.0 + 2 * i, seed=i)
        _sharpness_file(tmp_path, lr, bs, eig=10.0 - i, eps=2.0 - 0.1 * i)
    _sharpness_file(tmp_path, *RATIOS[4], eig=3.0, eps=1.0)  # a point without results: hollow
    points = sharpness_figure.dots(
        record_io.discover([tmp_path]), [results_fmt.load(p) for p in results_fmt.discover([tmp_path])]
    )
    assert len(points) == 5 and sum(d.score is None for d in points) == 1
    by_ratio = {round(d.ratio, 12): d.score for d in points if d.score is not None}
    assert all(
        math.isclose(by_ratio[round(lr / bs, 12)], 30.0 + 2 * i, abs_tol=0.1)
        for i, (lr, bs) in enumerate(RATIOS[:4])
    )
    out = sharpness_figure.write([tmp_path], tmp_path / "fig")
    assert out is not None and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sharpness_figure.write([tmp_path / "nothing"], tmp_path / "fig2") is None
