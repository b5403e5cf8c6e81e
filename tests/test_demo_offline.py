"""The demo without network: the real-model steps (one wheel from PyPI) are skipped with one line
each, and the rest of the pipeline, tables included, still runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalsuite import demo


def test_a_failed_real_model_step_is_skipped_and_the_demo_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    steps = [
        demo.Step("build the real model", ["repro", "no-such-command"], "real-model"),  # exits 2, as offline
        demo.Step("evaluate the real model", ["repro", "--help"], "real-model"),
        demo.Step("tables", ["evalsuite", "--help"]),
    ]
    monkeypatch.setattr(demo, "plan", lambda *args, **kwargs: steps)
    demo.run(tmp_path / "out", None, 1)
    out = capsys.readouterr().out
    assert "Network: the real-model step downloads one pinned wheel" in out
    assert "[1/3] skipped (exit 2" in out and "[2/3] skipped: evaluate the real model" in out
    assert "[3/3] done" in out and "demo finished" in out


def test_a_failed_required_step_still_stops_the_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.errors import UsageError

    monkeypatch.setattr(demo, "plan", lambda *args, **kwargs: [demo.Step("train", ["repro", "no-such"])])
    with pytest.raises(UsageError, match="step 1 failed"):
        demo.run(tmp_path / "out", None, 1)


def test_one_data_rule_for_every_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--data-dir, else $SMOLTULU_BENCHDATA, else the hub: the same for run, score and the demo,
    and every "not found" error says it."""
    from core.errors import UsageError
    from evalsuite.demo import DEMO_DATA
    from evalsuite.harness import sources

    monkeypatch.setenv(sources.DATA_ENV, str(DEMO_DATA))
    assert sources.benchmark_folder("piqa", None) == DEMO_DATA / "piqa"  # `run` reads the variable too
    assert demo.find_benchdata(None) == DEMO_DATA
    with pytest.raises(
        UsageError, match=r"has no mmlu_pro/ folder.*--data-dir DIR, else \$SMOLTULU_BENCHDATA"
    ):
        sources.benchmark_folder("mmlu_pro", tmp_path)  # --data-dir wins over the variable
    monkeypatch.delenv(sources.DATA_ENV)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UsageError, match=r"or pass local files: benchmark data is read from --data-dir"):
        sources.benchmark_folder("piqa", None, allow_unlocked=True)
