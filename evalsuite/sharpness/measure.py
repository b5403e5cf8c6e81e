"""How sharp a checkpoint's training loss is: top Hessian eigenvalue and Keskar's ε-sharpness.

Loss. The SFT stage's own loss, on a fixed batch of its own data: a seeded sample of `rows`
rows of the training set the run used (the in-repo smoke rows offline), rendered with the run's
training chat template and masked as the stage masks them (assistant turns and their
end-of-turn token, TRL's `assistant_only_loss`, cut at the recipe's max_length), f(x) = the
negative log-likelihood summed over the batch's loss tokens / their count (TRL's token mean).
The recipe's `loss_reduction` only rescales that (by a constant of the batch), so it is not
applied: every grid point is measured on the same f. The batch is the same for every
checkpoint measured with the same data, rows and seed; it is not held out from training (SFT
visits every row each epoch), and Keskar et al. measure sharpness of the training function f
itself. Only the SFT loss is supported (a DPO or RM checkpoint is refused).

Top eigenvalue (the largest, algebraically) of the Hessian, from Hessian-vector products over
every trainable parameter (forward-over-reverse, `torch.func.jvp` of `torch.func.grad`, summed
over micro-batches, so the Hessian is never formed), from a seeded Gaussian start:
- Lanczos (scipy.sparse.linalg.eigsh, which="LA", on a LinearOperator) when its Krylov basis fits
  `LANCZOS_MEMORY` (float64 vectors of every parameter): it separates close and ± pairs;
- otherwise power iteration, whose memory is three parameter-sized vectors; it finds the eigenvalue
  of largest magnitude and, when that one is negative, runs again on H − μI to reach the top one.
Either way the answer is "converged" only when its residual ‖Hv − λv‖ / |λ| is below `tolerance`
for the returned unit vector v, which bounds |λ − λ_j| ≤ tolerance·|λ| for some true eigenvalue λ_j
(the relative change of the estimate between iterations cannot: on a ±λ pair or a small gap it
stalls at a wrong value). Otherwise the record says "not converged" and the value is the last estimate.

ε-sharpness (Keskar et al. 2017, "On Large-Batch Training for Deep Learning", §2.2.1, A = I):
    φ(x, ε) = 100 · (max_{y ∈ C_ε} f(x + y) − f(x)) / (1 + f(x)),
    C_ε = {y : |y_i| ≤ ε (|x_i| + 1)}.
Keskar et al. maximise over the box with L-BFGS-B; here, conditional-gradient ascent with full
steps: from a seeded random point of the box, each step moves to the box corner that maximises
the loss's linearisation, y ← ε (|x| + 1) ⊙ sign(∇f(x + y)), keeping the best value seen. Every
value it reports is f at a point of the box, so φ is a lower bound of the true maximum, as Keskar's
L-BFGS-B result is. It is not exact even for a convex quadratic: there each step cannot lower f
and the maximum is at a corner, but the ascent can stop at a corner that is a local, not the
global, maximum of f over the corners.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from core.errors import UsageError

Params = dict[str, torch.Tensor]

DEFAULT_ROWS = 16
DEFAULT_SEED = 0
DEFAULT_MAX_ITERATIONS = 100
DEFAULT_TOLERANCE = 1e-3
DEFAULT_EPSILON = 1e-3  # Keskar et al. 2017 report ε = 1e-3 and 5e-4
DEFAULT_ASCENT_STEPS = 10
DEFAULT_MICRO_BATCH = 4
LANCZOS_MEMORY = 2 * 2**30  # bytes of Krylov basis (float64) above which power iteration is used
LANCZOS_NCV = 20  # scipy's default basis size for one eigenvalue
DEFAULT_MAX_LENGTH = 4096  # the SFT recipes' max_length (recipes/_sft.yaml: Tulu 3 default)


def _dot(a: Params, b: Params) -> torch.Tensor:
    return sum((a[k].double() * b[k].double()).sum() for k in a)  # float64 sums: 10^8 terms


@dataclass
class PowerResult:
    eigenvalue: float  # the top eigenvalue's estimate (the last Rayleigh quotient)
    iterations: int  # Hessian-vector products used
    converged: bool  # residual ‖Hv − λv‖ / |λ| < tolerance
    tolerance: float
    max_iterations: int
    seed: int
    trace: list[float] = field(default_factory=list)  # Rayleigh quotient per power iteration
    relative_change: list[float | None] = field(default_factory=list)  # None for the first
    residual: list[float] = field(default_factory=list)  # ‖Hv − λv‖ / |λ| per iteration (Lanczos: at the end)
    method: str = "power"  # "lanczos" (scipy eigsh) or "power" (with a shift when needed)


def _unit_start(like: Params, seed: int) -> Params:
    gen = torch.Generator().manual_seed(seed)  # on the CPU, so the start is the same on every device
    v = {k: torch.randn(t.shape, generator=gen, dtype=torch.float32).to(t) for k, t in like.items()}
    norm = math.sqrt(float(_dot(v, v)))
    return {k: t / norm for k, t in v.items()}


def _relative_residual(v: Params, hv: Params, estimate: float) -> float:
    r = {k: hv[k] - estimate * v[k] for k in v}
    return math.sqrt(float(_dot(r, r))) / max(abs(estimate), 1e-30)


def _power(
    hvp: Callable[[Params], Params], v: Params, out: PowerResult, budget: int, shift: float, bar: Any
) -> Params:
    """Power iteration on H − shift·I from unit v, appending to `out`; the eigenvalue is of H."""
    for step in range(budget):
        hv = hvp(v)
        if shift:
            hv = {k: hv[k] - shift * v[k] for k in v}
        estimate = float(_dot(v, hv))
        previous = out.trace[-1] - shift if step else None
        out.relative_change.append(
            None if previous is None else abs(estimate - previous) / max(abs(estimate), 1e-30)
        )
        out.trace.append(estimate + shift)
        out.eigenvalue, out.iterations = estimate + shift, out.iterations + 1
        residual = _relative_residual(v, hv, estimate) * abs(estimate) / max(abs(estimate + shift), 1e-30)
        out.residual.append(residual)
        bar.update()
        bar.set_postfix(eigenvalue=f"{out.eigenvalue:.5g}", residual=f"{residual:.2g}")
        norm = math.sqrt(float(_dot(hv, hv)))
        if residual < out.tolerance or norm == 0.0:  # norm 0: v is in the null space, Hv = 0 = λv
            out.converged = True
            return v
        v = {k: t / norm for k, t in hv.items()}
    out.converged = False
    return v


def _check_budget(method: str, max_iterations: int, tolerance: float) -> None:
    if max_iterations < 1 or not tolerance > 0:
        raise UsageError(f"{method} needs --max-iterations >= 1 and a positive --tolerance")


def power_iteration(
    hvp: Callable[[Params], Params],
    like: Params,
    *,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = DEFAULT_SEED,
    progress: bool = False,
) -> PowerResult:
    """The top eigenvalue of the symmetric operator `hvp` by power iteration (module docstring)."""
    _check_budget("power iteration", max_iterations, tolerance)
    out = PowerResult(math.nan, 0, False, tolerance, max_iterations, seed)
    with tqdm(total=max_iterations, desc="power iteration", disable=not progress, leave=False) as bar:
        _power(hvp, _unit_start(like, seed), out, max_iterations, 0.0, bar)
        if out.converged and out.eigenvalue < 0:  # the largest in magnitude is negative: shift past it
            out.converged = False
            budget, shift = max_iterations - out.iterations, out.eigenvalue
            _power(hvp, _unit_start(like, seed + 1), out, budget, shift, bar)
    return out


def lanczos(
    hvp: Callable[[Params], Params],
    like: Params,
    *,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = DEFAULT_SEED,
    progress: bool = False,
) -> PowerResult:
    """The top eigenvalue by implicitly restarted Lanczos (ARPACK through scipy's eigsh), at most
    `max_iterations` Hessian-vector products, then checked by its residual (module docstring)."""
    import numpy as np
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    _check_budget("Lanczos", max_iterations, tolerance)
    keys = list(like)
    sizes = [like[k].numel() for k in keys]
    n = sum(sizes)
    out = PowerResult(math.nan, 0, False, tolerance, max_iterations, seed, method="lanczos")

    def unflat(x: Any) -> Params:
        parts = torch.split(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)), sizes)
        return {k: t.reshape(like[k].shape).to(like[k]) for k, t in zip(keys, parts, strict=True)}

    def flat(p: Params) -> Any:
        return torch.cat([p[k].detach().reshape(-1).double().cpu() for k in keys]).numpy()

    class _Spent(Exception):
        pass

    with tqdm(total=max_iterations, desc="Lanczos", disable=not progress, leave=False) as bar:

        def matvec(x: Any) -> Any:
            if out.iterations >= max_iterations - 1:  # keep one product for the residual check
                raise _Spent
            out.iterations += 1
            bar.update()
            return flat(hvp(unflat(x)))

        op = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
        v0 = flat(_unit_start(like, seed))
        ncv = min(n, LANCZOS_NCV)
        vector = None
        try:
            if n == 1:
                vector = np.ones(1)
            else:
                _, vectors = eigsh(op, k=1, which="LA", v0=v0, ncv=ncv, tol=tolerance / 10)
                vector = vectors[:, 0]
        except ArpackNoConvergence as exc:
            if exc.eigenvectors is not None and exc.eigenvectors.shape[1]:
                vector = exc.eigenvectors[:, 0]
        except _Spent:
            pass
        if vector is None:  # the budget ran out before a Ritz vector: the start vector's quotient
            vector = v0
        v = unflat(vector / np.linalg.norm(vector))
        hv = hvp(v)
        out.iterations += 1
        estimate = float(_dot(v, hv))
        out.trace.append(estimate)
        out.relative_change.append(None)
        out.residual.append(_relative_residual(v, hv, estimate))
        out.eigenvalue = estimate
        out.converged = out.residual[-1] < tolerance
    return out


def top_eigenvalue(
    hvp: Callable[[Params], Params],
    like: Params,
    *,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    tolerance: float = DEFAULT_TOLERANCE,
    seed: int = DEFAULT_SEED,
    progress: bool = False,
) -> PowerResult:
    """Lanczos when its basis fits LANCZOS_MEMORY, else power iteration (module docstring)."""
    n = sum(t.numel() for t in like.values())
    method = lanczos if (LANCZOS_NCV + 2) * n * 8 <= LANCZOS_MEMORY else power_iteration
    return method(hvp, like, max_iterations=max_iterations, tolerance=tolerance, seed=seed, progress=progress)


@dataclass
class EpsilonResult:
    value: float  # φ, percent
    epsilon: float
    steps: int
    seed: int
    loss: float  # f(x)
    max_loss: float  # the largest f(x + y) found in C_ε
    trace: list[float] = field(default_factory=list)  # f(x + y) at the start and after each step
    method: str = (
        "conditional-gradient ascent in C_eps with full steps (y <- eps(|x|+1) sign(grad f(x+y))) from a "
        "seeded random point of the box, best value kept; Keskar et al. used L-BFGS-B"
    )


def epsilon_sharpness(
    value_and_grad: Callable[[Params], tuple[float, Params]],
    params: Params,
    *,
    epsilon: float = DEFAULT_EPSILON,
    steps: int = DEFAULT_ASCENT_STEPS,
    seed: int = DEFAULT_SEED,
    progress: bool = False,
) -> EpsilonResult:
    """Keskar et al.'s φ(x, ε) with A = I, maximised by conditional-gradient ascent (module docstring)."""
    if not epsilon > 0 or steps < 0:
        raise UsageError("ε-sharpness needs a positive --epsilon and --ascent-steps >= 0")
    width = {k: epsilon * (t.abs() + 1.0) for k, t in params.items()}
    gen = torch.Generator().manual_seed(seed)
    y = {
        k: (2 * torch.rand(t.shape, generator=gen, dtype=torch.float32).to(t) - 1) * width[k]
        for k, t in params.items()
    }
    f0, _ = value_and_grad(params)
    value, grad = value_and_grad({k: params[k] + y[k] for k in params})
    trace = [value]
    for _ in tqdm(range(steps), desc="ε-sharpness ascent", disable=not progress, leave=False):
        y = {k: width[k] * torch.sign(grad[k]) for k in params}
        value, grad = value_and_grad({k: params[k] + y[k] for k in params})
        trace.append(value)
    best = max(trace)
    return EpsilonResult(100.0 * (best - f0) / (1.0 + f0), epsilon, steps, seed, f0, best, trace)


# --- the SFT loss on a fixed batch ---------------------------------------------------------------


@dataclass(frozen=True)
class MicroBatch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor  # -100 where no loss (prompt, padding)


@dataclass(frozen=True)
class Batch:
    micro: list[MicroBatch]
    loss_tokens: int
    rows: list[str]  # the ids (or indices) of the rows used


def sft_rows(
    messages: Sequence[list[dict[str, str]]],
    ids: Sequence[str],
    tokenizer: Any,
    template: str,
    *,
    max_length: int = DEFAULT_MAX_LENGTH,
    micro_batch: int = DEFAULT_MICRO_BATCH,
) -> Batch:
    """Tokenize conversations as the SFT stage does: the training template's assistant mask is the loss.

    Rows left without loss tokens after the cut at max_length are dropped, as repro.stages.sft does.
    """
    encoded: list[tuple[list[int], list[int], str]] = []
    for row_id, conversation in zip(ids, messages, strict=True):
        out = tokenizer.apply_chat_template(
            conversation,
            chat_template=template,
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
        )
        input_ids = list(out["input_ids"])[:max_length]
        mask = list(out["assistant_masks"])[:max_length]
        labels = [t if m else -100 for t, m in zip(input_ids, mask, strict=True)]
        if any(label != -100 for label in labels[1:]):  # the first token is never predicted
            encoded.append((input_ids, labels, row_id))
    if not encoded:
        raise UsageError("no row of the batch has assistant tokens to compute the SFT loss on")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    micro = []
    for start in range(0, len(encoded), micro_batch):
        chunk = encoded[start : start + micro_batch]
        width = max(len(ids_) for ids_, _, _ in chunk)
        ids_t = torch.full((len(chunk), width), pad, dtype=torch.long)
        labels_t = torch.full((len(chunk), width), -100, dtype=torch.long)
        attn = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, (ids_, labels, _) in enumerate(chunk):
            ids_t[i, : len(ids_)] = torch.tensor(ids_)
            labels_t[i, : len(labels)] = torch.tensor(labels)
            attn[i, : len(ids_)] = 1
        micro.append(MicroBatch(ids_t, attn, labels_t))
    tokens = sum(int((m.labels[:, 1:] != -100).sum()) for m in micro)
    return Batch(micro, tokens, [r for _, _, r in encoded])


class SFTLoss:
    """f(params) = summed next-token NLL over the batch's loss tokens / their count, functionally."""

    def __init__(self, model: torch.nn.Module, batch: Batch, device: torch.device) -> None:
        self.model = model
        self.device = device
        self.batch = [
            MicroBatch(*(t.to(device) for t in (m.input_ids, m.attention_mask, m.labels)))
            for m in batch.micro
        ]
        self.tokens = batch.loss_tokens
        self.params: Params = {k: p.detach() for k, p in model.named_parameters() if p.requires_grad}

    def _part(self, m: MicroBatch) -> Callable[[Params], torch.Tensor]:
        def f(params: Params) -> torch.Tensor:
            logits = torch.func.functional_call(
                self.model,
                params,
                args=(),
                kwargs={"input_ids": m.input_ids, "attention_mask": m.attention_mask},
            ).logits
            nll = torch.nn.functional.cross_entropy(
                logits[:, :-1]
                .to(torch.promote_types(logits.dtype, torch.float32))
                .reshape(-1, logits.size(-1)),
                m.labels[:, 1:].reshape(-1),
                ignore_index=-100,
                reduction="sum",
            )
            return nll / self.tokens

        return f

    def value_and_grad(self, params: Params) -> tuple[float, Params]:
        total, grads = 0.0, {k: torch.zeros_like(t) for k, t in params.items()}
        for m in self.batch:
            g, v = torch.func.grad_and_value(self._part(m))(params)
            total += float(v)
            for k in grads:
                grads[k] += g[k]
        return total, grads

    def hvp(self, v: Params) -> Params:
        out = {k: torch.zeros_like(t) for k, t in self.params.items()}
        for m in self.batch:
            _, hv = torch.func.jvp(torch.func.grad(self._part(m)), (self.params,), (v,))
            for k in out:
                out[k] += hv[k]
        return out


def load_model(model_dir: Path, device: torch.device) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    # eager attention: the fused SDPA kernels have no forward-mode derivative (jvp); same function
    model = AutoModelForCausalLM.from_pretrained(
        model_dir,
        dtype=torch.float32,
        attn_implementation="eager",
        trust_remote_code=False,
        use_safetensors=True,
    )
    return model.to(device).eval()  # eval: no dropout, f is deterministic


@dataclass
class Measured:
    loss: float
    loss_tokens: int
    rows: list[str]
    hessian: PowerResult
    epsilon: EpsilonResult
    seconds: float

    def record(self) -> dict[str, Any]:
        hessian = asdict(self.hessian)
        hessian["top_eigenvalue"] = hessian.pop("eigenvalue")
        hessian["method"] = (
            ("Lanczos (scipy eigsh, which=LA)" if self.hessian.method == "lanczos" else "power iteration")
            + " on Hessian-vector products (torch.func.jvp of torch.func.grad), seeded Gaussian start; "
            "converged when the residual |Hv - lambda v| / |lambda| < tolerance"
        )
        return {"hessian": hessian, "epsilon_sharpness": asdict(self.epsilon)}


def measure(
    model: torch.nn.Module,
    batch: Batch,
    device: torch.device,
    *,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    tolerance: float = DEFAULT_TOLERANCE,
    epsilon: float = DEFAULT_EPSILON,
    ascent_steps: int = DEFAULT_ASCENT_STEPS,
    seed: int = DEFAULT_SEED,
    progress: bool = True,
) -> Measured:
    start = time.monotonic()
    loss = SFTLoss(model, batch, device)
    f0, _ = loss.value_and_grad(loss.params)
    power = top_eigenvalue(
        loss.hvp,
        loss.params,
        max_iterations=max_iterations,
        tolerance=tolerance,
        seed=seed,
        progress=progress,
    )
    eps = epsilon_sharpness(
        loss.value_and_grad, loss.params, epsilon=epsilon, steps=ascent_steps, seed=seed, progress=progress
    )
    return Measured(f0, batch.loss_tokens, batch.rows, power, eps, time.monotonic() - start)
