"""`python -m evalsuite score`: score generations produced elsewhere with the suite's scorers.

Each JSONL line names its item by `id` (as `run` writes it: `gsm8k:12`, `bbh_navigate:3`,
IFEval's `key`) or by the exact prompt text (the user turn, e.g. "Question: …\\nAnswer:",
or the bare question), and carries the output as `output` (or `response`). IFEval also accepts
the reference repository's response files ({"prompt", "response"}) against its input_data.jsonl.
The results folder has the same format as `run`'s, with backend "external"; it belongs to the
outputs file by its sha256 (evalsuite/harness/run_folder.py): another file under the same label is
refused unless --force.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import UsageError, json_loads, options
from evalsuite import benchmarks as registry
from evalsuite import results as results_io
from evalsuite.harness import run_folder, sources

GENERATIVE = ("gsm8k", "bbh", "ifeval")
Scorer = Callable[[dict[str, Any], str], dict[str, Any]]


def _items(benchmark: str, folder: Path) -> list[tuple[str, str, dict[str, Any], str]]:
    """(subtask, id, doc, prompt) for every item, ids as `run` assigns them."""
    from evalsuite.harness import protocol  # lm-eval is heavy: import it only when scoring

    out = []
    if benchmark == "bbh":
        for subset in sources.BBH_SUBSETS:
            for i, doc in enumerate(sources.read("bbh", folder, subset)["train"]):
                out.append((f"bbh_{subset}", f"bbh_{subset}:{i}", doc, protocol.bbh_prompt(doc)))
    elif benchmark == "gsm8k":
        for i, doc in enumerate(sources.read("gsm8k", folder)["test"]):
            out.append(("gsm8k", f"gsm8k:{i}", doc, protocol.gsm8k_prompt(doc)))
    else:
        for doc in sources.read("ifeval", folder)["train"]:
            out.append(("ifeval", str(doc["key"]), doc, protocol.ifeval_prompt(doc)))
    return out


def _bare(prompt: str) -> str:
    return re.sub(r"^Question: |\nAnswer: ?$", "", prompt)


def _read_outputs(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (FileNotFoundError, IsADirectoryError):
        raise UsageError(f"--outputs {path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"--outputs {path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json_loads(line)
        except json.JSONDecodeError:
            raise UsageError(f"{path}:{n}: not valid JSON") from None
        if (
            not isinstance(row, dict)
            or not ({"id", "prompt"} & row.keys())
            or not ({"output", "response"} & row.keys())
        ):
            raise UsageError(f"{path}:{n}: each line needs 'id' or 'prompt', and 'output' (or 'response')")
        rows.append(row)
    if not rows:
        raise UsageError(f"{path}: no outputs in the file")
    return rows


def _scorer(benchmark: str) -> Scorer:
    from evalsuite.harness import protocol

    if benchmark == "gsm8k":
        return lambda doc, out: {"score": protocol.gsm8k_results(doc, [out])["exact_match"]}
    if benchmark == "bbh":
        return lambda doc, out: {"score": protocol.bbh_results(doc, [out])["exact_match"]}
    from core.scoring.ifeval import score_item

    def ifeval(doc: dict[str, Any], out: str) -> dict[str, Any]:
        metrics = score_item(doc, out)
        return {"score": float(metrics["prompt_strict"]), "metrics": metrics}

    return ifeval


def score(
    benchmark: str,
    outputs: Path,
    *,
    data_dir: Path | None,
    output: Path,
    label: str | None,
    lock_path: Path | None = None,
    allow_unlocked: bool = False,
    force: bool = False,
) -> Path:
    if benchmark not in GENERATIVE:
        registry.get(benchmark)
        raise UsageError(
            f"{benchmark} is scored from log-likelihoods, which need the model: use `evalsuite run`; "
            f"`score` takes generations for {', '.join(GENERATIVE)}"
        )
    rows = _read_outputs(outputs)
    if label is not None:
        label = results_io.check_label(label)
    else:  # the outputs file's name, checked like --label ("...jsonl" must not name "..")
        label = results_io.label_from(outputs.stem)
        if not label:
            raise UsageError(f"cannot name the results after {outputs.name!r}: pass --label NAME")
    folder_in = sources.benchmark_folder(
        benchmark, data_dir, lock_path=str(lock_path) if lock_path else None, allow_unlocked=allow_unlocked
    )
    items = _items(benchmark, folder_in)
    by_id = {i[1]: i for i in items}
    by_prompt: dict[str, tuple[str, str, dict[str, Any], str]] = {}
    for item in items:
        by_prompt.setdefault(item[3], item)
        by_prompt.setdefault(_bare(item[3]), item)
    scorer = _scorer(benchmark)
    if benchmark == "ifeval":
        from core.scoring.punkt import ensure_punkt_tab

        ensure_punkt_tab()
    records: dict[str, dict[str, Any]] = {}
    unmatched = 0
    for row in rows:
        item = by_id.get(str(row["id"])) if "id" in row else by_prompt.get(row["prompt"])
        if item is None:
            unmatched += 1
            continue
        subtask, item_id, doc, prompt = item
        if item_id in records:
            raise UsageError(f"{outputs}: item {item_id} has more than one output")
        text = row.get("output", row.get("response"))
        if not isinstance(text, str):
            raise UsageError(f"{outputs}: the output for {item_id} is not a string")
        records[item_id] = {
            "id": item_id,
            "subtask": subtask,
            "output": text,
            "prompt_sha256": hashlib.sha256(prompt.encode("utf-8")).hexdigest(),
            **scorer(doc, text),
        }
    if unmatched:
        raise UsageError(
            f"{outputs}: {unmatched} of {len(rows)} lines match no {benchmark} item by id or exact prompt; "
            "ids look like " + ", ".join(list(by_id)[:2])
        )
    ordered = [records[i[1]] for i in items if i[1] in records]
    folder = output / label
    identity = run_folder.outputs_identity(outputs)
    with run_folder.owned(
        folder, identity, force=force, what=f"evalsuite score {benchmark} {outputs}", inputs=[data_dir]
    ) as pending:
        _write(folder, pending, benchmark, outputs, label, identity, ordered, len(items))
    return folder


def _write(
    folder: Path,
    pending: Path,
    benchmark: str,
    outputs: Path,
    label: str,
    identity: run_folder.Identity,
    ordered: list[dict[str, Any]],
    total: int,
) -> Path:
    rel = results_io.write_items(pending, benchmark, ordered)
    bench = registry.get(benchmark)
    extra = registry.ifeval_scores(ordered) if benchmark == "ifeval" else {}
    res = results_io.Results(
        model=results_io.ModelInfo(
            spec=str(outputs), label=label, kind="causal-lm", source="external", sha256=identity.sha256
        ),
        backend="external",
        benchmarks={
            benchmark: results_io.BenchmarkResult(
                score=bench.headline(ordered),
                n=len(ordered),
                metric="external outputs",
                scores=extra,
                counts={"items_in_benchmark": total},
                items=rel,
            )
        },
        limit=None if len(ordered) == total else len(ordered),
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        settings={"outputs_file": str(outputs)},
    )
    path = run_folder.commit(folder, res, pending)
    print(f"{bench.column}: {res.benchmarks[benchmark].score:.2f} on {len(ordered)} of {total} items")
    for name, value in extra.items():
        print(f"  {name}: {value:.2f}")
    print(f"results: {path}")
    return path


def _reference_ifeval(args: argparse.Namespace) -> int:
    from core.scoring.ifeval import score_reference_files

    report = score_reference_files(args.input_data, args.outputs)
    for name, value in report["scores"].items():
        print(f"{name}: {value:.2f}")
    return 0


def _cmd(args: argparse.Namespace) -> int:
    if args.input_data is not None:
        if args.benchmark != "ifeval":
            raise UsageError(
                "--input-data is the IFEval reference repository's input_data.jsonl: use it with ifeval"
            )
        return _reference_ifeval(args)
    score(
        args.benchmark,
        args.outputs,
        lock_path=args.lock,
        **options(args, "data_dir", "output", "label", "allow_unlocked", "force"),
    )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score",
        help="score outputs generated elsewhere (GSM8K, BBH, IFEval) with the suite's scorers",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    p.add_argument("--benchmark", required=True, help=f"one of {', '.join(GENERATIVE)}")
    p.add_argument("--outputs", type=Path, required=True, help="JSONL: id or prompt, and output, per line")
    p.add_argument(
        "--data-dir", type=Path, default=None, help="benchmark files as for `run` (default: the hub)"
    )
    p.add_argument("--output", type=Path, default=Path("results"), help="results root (default: results)")
    p.add_argument(
        "--label",
        type=results_io.label_arg,
        default=None,
        help="results folder/table label (default: the outputs file name)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="when OUTPUT/<label> holds the results of another model or outputs file, delete them first",
    )
    p.add_argument(
        "--input-data",
        type=Path,
        default=None,
        help="IFEval only: score reference-repository response files against this input_data.jsonl "
        "and print the four scores in the reference's terms",
    )
    p.add_argument("--allow-unlocked", action="store_true", help="allow unpinned hub datasets")
    p.set_defaults(func=_cmd)
