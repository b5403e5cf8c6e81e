"""Recipes: sources on every value, inheritance, paper values, overrides, batch arithmetic."""

from __future__ import annotations

import shutil
import warnings

import pytest
from conftest import run_module

from core import recipe
from core.errors import UsageError
from evalsuite.report import hparam_tables

# recipes.md, Tables 2, 5 and 7: (learning rate, effective batch, LR/BS as printed, scale).
PAPER = {
    "sft-1130": (9.0e-5, 8, "11.25", 1e6),
    "sft-1207": (3.1e-6, 32, "0.097", 1e6),
    "dpo-1130": (8.0e-7, 12, "0.667", 1e7),
    "dpo-1207": (5.0e-7, 32, "0.156", 1e7),
    "rm-1130": (4.0e-5, 4, "100", 1e7),
    "rm-1207": (7.5e-7, 8, "0.938", 1e7),
}


def test_every_checkpoint_has_a_recipe() -> None:
    assert recipe.names() == sorted([*PAPER, "ablation-135m", "rlvr-1130"])


@pytest.mark.parametrize("name", sorted(PAPER))
def test_every_value_names_its_source(name: str) -> None:
    r = recipe.load(name)
    for section in (r.inputs, r.hyperparameters):
        for key, item in section.items():
            assert item.source.startswith(("paper ", "Tulu 3 default", "assumption: ")), (key, item.source)


def test_generated_tables_equal_the_papers() -> None:
    for _title, names, scale in hparam_tables.TABLES:
        lr_row, bs_row, ratio_row = hparam_tables.rows(names, scale)
        for column, name in enumerate(names, start=1):
            lr, bs, ratio, paper_scale = PAPER[name]
            assert float(lr_row[column]) == lr
            assert bs_row[column] == bs
            assert ratio_row[column] == ratio and scale == paper_scale


# The Tulu 3 columns the paper prints beside them (arXiv 2412.08347 Tables 2, 5, 7):
# (table, header) -> (learning rate, effective batch, LR/BS as printed). Table 7's column is headed
# "Tulu 3 DPO 8b" and repeats the DPO values; the Tulu 3 8B RM itself used 3e-6 and 256 (recipes.md).
PAPER_REFERENCE = {
    (2, "Tulu 3 SFT 8b"): (5.0e-6, 128, "0.039"),
    (2, "Tulu 3 SFT 70b"): (2.0e-6, 128, "0.016"),
    (5, "Tulu 3 DPO 8b"): (5.0e-7, 128, "0.039"),
    (5, "Tulu 3 DPO 70b"): (2.0e-7, 128, "0.016"),
    (7, "Tulu 3 DPO 8b"): (5.0e-7, 128, "0.039"),
}


def test_reference_columns_equal_the_papers() -> None:
    columns = hparam_tables.reference_columns()
    got = {(c.table, c.header): (c.learning_rate.value, c.effective_batch_size.value, c.ratio.value)
           for c in columns}  # fmt: skip
    assert got == PAPER_REFERENCE
    scale = {hparam_tables.number(title): s for title, _, s in hparam_tables.TABLES}
    for c in columns:
        # every value names its source, the paper's table first
        for item in (c.learning_rate, c.effective_batch_size, c.ratio):
            assert item.source.startswith(f"paper Table {c.table}"), (c.header, item.source)
        # the LR/BS the suite prints from the values is the one the paper prints
        (ratio,) = hparam_tables.reference_rows([c], scale[c.table])[2]
        assert ratio == c.ratio.value, c.header
    (rm,) = [c for c in columns if c.table == 7]
    assert rm.actual is not None and rm.note
    assert (rm.actual["learning_rate"].value, rm.actual["effective_batch_size"].value) == (3e-6, 256)


def test_variants_inherit_the_stage_defaults() -> None:
    a, b = recipe.load("dpo-1130"), recipe.load("dpo-1207")
    shared = {"beta": 5.0, "max_length": 2048, "warmup_ratio": 0.1, "num_train_epochs": 1,
              "loss_type": "sigmoid_norm", "precompute_ref_log_probs": True}  # fmt: skip
    for key, value in shared.items():
        assert a.hp(key) == b.hp(key) == value
    assert (a.inputs["model"].value, b.inputs["model"].value) == ("sft-1130", "sft-1207")
    assert recipe.load("rm-1130").inputs["model"].value == "dpo-1130"
    sft = recipe.load("sft-1130")
    assert (sft.hp("num_train_epochs"), sft.hp("warmup_ratio"), sft.hp("max_length"), sft.hp("seed")) == (
        2,
        0.03,
        4096,
        123,
    )


def test_tulu3_values_and_sources_follow_open_instruct() -> None:
    """Issue 15 item 3: values as open-instruct 816dcbf runs them, the paper's text, or labelled guesses."""
    sft, dpo, rm = (recipe.load(n) for n in ("sft-1130", "dpo-1130", "rm-1130"))

    def source(r: recipe.Recipe, key: str) -> str:
        return r.hyperparameters[key].source

    # seeds: the 8B SFT command's; the DPO and RM commands pass none, so their scripts' defaults
    assert (sft.hp("seed"), dpo.hp("seed"), rm.hp("seed")) == (123, 42, 1)
    assert "--seed 123" in source(sft, "seed") and "docs/tulu3.md" in source(sft, "seed")
    assert "dpo_tune.py's default 42" in source(dpo, "seed")
    assert "reward_modeling.py's default 1" in source(rm, "seed")
    # the RM's optimizer is torch's AdamW without a weight decay argument: torch's default 0.01
    assert rm.hp("weight_decay") == 0.01 and "torch's default 0.01" in source(rm, "weight_decay")
    assert source(rm, "weight_decay").startswith("Tulu 3 default")
    # clipping at 1.0: accelerate fills DeepSpeed's 'auto' (the scripts' own clipping is off)
    for r in (sft, dpo, rm):
        assert r.hp("max_grad_norm") == 1.0 and "accelerate" in source(r, "max_grad_norm"), r.name
        assert source(r, "max_grad_norm").startswith("Tulu 3 default"), r.name
    # DPO: the paper's §4.2 text, not Table 5 (which lists the learning rate and batch size)
    for key in ("beta", "max_length", "lr_scheduler_type", "warmup_ratio"):
        assert source(dpo, key).startswith("paper §4.2"), key
    # RM-1207's starting point is a labelled assumption, the Tulu 3 choice one --from away
    start = recipe.load("rm-1207").inputs["model"]
    assert start.value == "dpo-1207" and start.source.startswith("assumption: ")
    assert "RM-1130" in start.source and "--from" in start.source and "sft-1207" in start.source


def test_rm_1207_starts_from_sft_1207_with_from(tmp_path, tiny_model_dir) -> None:
    """The other choice for RM-1207's start (Tulu 3's: its SFT model) is `--from <sft-1207 run>`."""
    from core import lock as lockfile
    from repro.training import run

    sft_run = tmp_path / "sft-1207"  # a finished run folder, as `python -m repro sft-1207` leaves it
    shutil.copytree(tiny_model_dir, sft_run / "final")  # --from checks it is a model folder
    (sft_run / "manifest.json").write_text("{}")
    request = run.Request(recipe=recipe.load("rm-1207"), profile="smoke", plan=recipe.plan_batch(8, 1),
                          out=tmp_path / "rm", lock=lockfile.load(), init_from=sft_run)  # fmt: skip
    assert run.model_input(request).path == (sft_run / "final").resolve()


@pytest.mark.slow  # three dry-run CLI processes (SFT, DPO, RLVR): about 14 s of CPU
def test_dry_run_shows_the_tulu3_choices_with_their_sources(tmp_path) -> None:
    """Issue 15 item 5: the loss reduction, seeds, clipping, RM weight decay and RM-1207's start, sourced."""
    env = {"HF_HUB_OFFLINE": "1", "SMOLTULU_OUTPUTS": str(tmp_path)}
    sft = run_module("repro", "sft-1130", "--dry-run", env=env)
    assert sft.returncode == 0, sft.stderr
    assert "loss_reduction = 'sum'" in sft.stdout and "average_tokens_across_devices = False" in sft.stdout
    assert "--reduce_loss sum" in sft.stdout and "open-instruct finetune.py --reduce_loss sum" in sft.stdout
    assert "--seed 123" in sft.stdout and "Accelerator._prepare_deepspeed" in sft.stdout
    rm = run_module("repro", "rm-1207", "--dry-run", env=env)
    assert rm.returncode == 0, rm.stderr
    for needle in ("torch's default 0.01", "reward_modeling.py's default 1", "accelerate's DeepSpeedPlugin",
                   "assumption: the paper does not say; DPO-1207", "--from <sft-1207 run>"):  # fmt: skip
        assert needle in rm.stdout, needle
    dpo = run_module("repro", "dpo-1207", "--dry-run", env=env)
    assert dpo.returncode == 0, dpo.stderr
    assert "paper §4.2" in dpo.stdout and "dpo_tune.py's default 42" in dpo.stdout


def test_ablation_grid_spans_the_papers_ratios() -> None:
    grid = recipe.load("ablation-135m").grid
    ratios = [lr / bs for lr in grid["learning_rate"].value for bs in grid["effective_batch_size"].value]
    assert min(ratios) <= 0.016e-6 * 1.0001 and max(ratios) >= 11.25e-6 * 0.9999


def test_overrides_are_typed_recorded_and_checked() -> None:
    r = recipe.apply_overrides(recipe.load("sft-1130"), ["learning_rate=1e-5"])
    assert r.hp("learning_rate") == 1e-5 and r.overrides == ("learning_rate=1e-5",)
    assert r.hyperparameters["learning_rate"].source.startswith("override: ")
    for bad, message in [("nope=1", "not a setting"), ("learning_rate", "key=value"),
                         ("learning_rate=fast", "expected a value like")]:  # fmt: skip
        with pytest.raises(UsageError, match=message):
            recipe.apply_overrides(recipe.load("sft-1130"), [bad])


@pytest.mark.parametrize(
    ("effective", "world", "per_device", "expected"),
    [
        (12, 1, None, (6, 2)),
        (12, 4, None, (3, 1)),
        (32, 8, 2, (2, 2)),
        (8, 8, None, (1, 1)),
        (4, 2, 1, (1, 2)),
    ],
)
def test_batch_plans_keep_the_effective_batch(effective, world, per_device, expected) -> None:
    plan = recipe.plan_batch(effective, world, per_device)
    assert (plan.per_device, plan.grad_accum) == expected
    assert plan.per_device * plan.grad_accum * plan.world_size == effective


@pytest.mark.parametrize(("effective", "world", "per_device"), [(12, 5, None), (12, 1, 5), (8, 16, None)])
def test_impossible_batch_arithmetic_is_refused(effective, world, per_device) -> None:
    with pytest.raises(UsageError):
        recipe.plan_batch(effective, world, per_device)


def test_dry_run_prints_the_resolved_run_offline(tmp_path) -> None:
    result = run_module(
        "repro", "dpo-1130", "--dry-run", env={"HF_HUB_OFFLINE": "1", "SMOLTULU_OUTPUTS": str(tmp_path)}
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "not produced yet: run `python -m repro sft-1130`" in out
    assert "allenai/llama-3.1-tulu-3-8b-preference-mixture@UNRESOLVED" in out
    assert "6 per device x 2 accumulation x 1 process(es) = 12" in out
    assert "loss_type = ['sigmoid_norm']" in out and "paper Table 5" in out


def test_seed_flag_sets_the_training_seed_and_its_own_folder(tmp_path) -> None:
    env = {"HF_HUB_OFFLINE": "1", "SMOLTULU_OUTPUTS": str(tmp_path)}
    result = run_module("repro", "dpo-1130", "--dry-run", "--seed", "7", env=env)
    assert result.returncode == 0, result.stderr
    assert "seed = 7" in result.stdout and "overrides: seed=7" in result.stdout
    assert f"output: {tmp_path / 'dpo-1130-seed7'}" in result.stdout
    default = run_module("repro", "dpo-1130", "--dry-run", env=env)
    assert "seed = 42" in default.stdout and f"output: {tmp_path / 'dpo-1130'}" in default.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["no-such-recipe"], "invalid choice"),
        (["dpo-1130", "--dry-run", "--override", "nope=1"], "not a setting"),
        (["dpo-1130", "--dry-run", "--world-size", "5"], "cannot be split"),
        (["sft-1130", "--dry-run", "--per-device-batch", "3"], "does not divide"),
    ],
)
def test_recipe_cli_bad_input(args: list[str], needle: str) -> None:
    run_module("repro", *args).assert_usage_error(needle)


@pytest.mark.parametrize("name", sorted(PAPER))
def test_trl_accepts_every_recipe(name: str, tmp_path) -> None:
    from repro.training import trl_args

    r = recipe.load(name)
    kwargs = trl_args.trl_kwargs(r, recipe.plan_batch(r.hp("effective_batch_size"), 1), str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # no deprecated argument, ours or TRL's default
        config = trl_args.config_class(r.stage)(**{**kwargs, "bf16": False, "use_cpu": True})
    assert config.gradient_checkpointing  # TRL's default kept, by transformers 5's name
    assert config.learning_rate == r.hp("learning_rate")
    assert config.per_device_train_batch_size * config.gradient_accumulation_steps == r.hp(
        "effective_batch_size"
    )
    assert config.get_warmup_steps(1000) == round(1000 * r.hp("warmup_ratio"))
