"""How the SFT loss is reduced over tokens, micro-batches, accumulation steps and processes.

The recipe key `loss_reduction` picks one of three reductions. For one optimizer step over the
micro-batches m of W processes x G gradient-accumulation steps, with S_m the summed negative
log-likelihood of the loss tokens of micro-batch m and n_m their count, the gradient is:

- `sum`:        grad (1 / (W G)) sum_m S_m
- `mean`:       grad (1 / (W G)) sum_m S_m / n_m
- `token_mean`: grad sum_m S_m / sum_m n_m

`sum` and `mean` are open-instruct's `--reduce_loss` modes (allenai/open-instruct 816dcbf,
open_instruct/finetune.py, the training loop in `main`): `mean` (its default) backpropagates the
model's own loss, a mean over the micro-batch's non-masked tokens (transformers 4.43 causal-LM
loss); `sum` backpropagates `CrossEntropyLoss(reduction="sum")` over the same tokens. Either is
then divided by the accumulation steps (accelerate's `Accelerator.backward`, or DeepSpeed's
engine backward) and averaged over processes (DDP / DeepSpeed gradient averaging): the 1 / (W G)
above. `sum` is `token_mean` times the loss tokens per micro-batch (sum_m n_m / (W G)), hundreds
for real conversations, so its gradient norm is that much larger and clipping at 1.0 acts on
nearly every step. `mean` weights each micro-batch equally whatever its token count, which
`token_mean` does not. `token_mean` is TRL's own SFT loss with `average_tokens_across_devices`.
tests/test_sft_loss.py checks each gradient against these formulas across accumulation and
world-size splits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trl import SFTConfig, SFTTrainer

SUM, MEAN, TOKEN_MEAN = "sum", "mean", "token_mean"
REDUCTIONS = {
    SUM: "per micro-batch token sum / accumulation steps, averaged over processes "
    "(open-instruct finetune.py --reduce_loss sum)",
    MEAN: "per micro-batch token mean / accumulation steps, averaged over processes "
    "(open-instruct finetune.py --reduce_loss mean, its default)",
    TOKEN_MEAN: "token mean over the global batch, every process and accumulation step "
    "(TRL SFTTrainer with average_tokens_across_devices=True)",
}


@dataclass
class ReproSFTConfig(SFTConfig):
    """TRL's SFTConfig plus the loss reduction (module level, so checkpoints can pickle it)."""

    loss_reduction: str = field(
        default=TOKEN_MEAN, metadata={"help": f"SFT loss reduction: one of {', '.join(REDUCTIONS)}"}
    )


class ReducedLossSFTTrainer(SFTTrainer):
    """SFTTrainer whose training loss follows `args.loss_reduction` (module docstring).

    `token_mean` is TRL's loss, untouched. For `sum` and `mean`, TRL's fused-head loss is asked for
    the micro-batch's own reduction (its token sum divided by `num_items_in_batch`, or by the
    micro-batch's token count when that is None), then divided by the configured accumulation
    steps, as accelerate 0.31's `backward` does even for a short last accumulation window; the
    processes' gradients are averaged by DDP / DeepSpeed as in open-instruct. Evaluation keeps
    TRL's token mean. A micro-batch without loss tokens gives 0 (TRL clamps the count), where
    open-instruct's `mean` would give NaN.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        reduction = getattr(self.args, "loss_reduction", TOKEN_MEAN)
        if reduction not in REDUCTIONS:
            raise ValueError(f"loss_reduction {reduction!r} is not one of {', '.join(REDUCTIONS)}")
        if reduction != TOKEN_MEAN:
            if self.args.average_tokens_across_devices:
                # TRL would multiply the loss by the world size to undo DDP's averaging
                raise ValueError(f"loss_reduction {reduction!r} needs average_tokens_across_devices=False")
            self.loss_is_scaled_for_ga = True  # compute_loss divides by the accumulation steps itself

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        reduction = getattr(self.args, "loss_reduction", TOKEN_MEAN)
        if reduction == TOKEN_MEAN or not model.training:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch=num_items_in_batch)
        divisor = 1 if reduction == SUM else None  # None: the micro-batch's own loss-token count
        result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch=divisor)
        loss, outputs = result if return_outputs else (result, None)
        loss = loss / self.args.gradient_accumulation_steps
        return (loss, outputs) if return_outputs else loss
