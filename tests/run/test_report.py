"""The study report on synthetic run folders: numbers recomputed by hand from metrics.csv, the
paper's table layout, labels derived from config.yaml, bad input, the figures and the CLI."""

import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from rliable import metrics as rly_metrics
from scipy import stats

from jaxsparse.cli import main
from jaxsparse.run.aggregate import iqm_ci
from jaxsparse.run.report import (
    CSV_COLUMNS,
    MISSING,
    ReportError,
    collect_runs,
    derive_labels,
    find_run_dirs,
    write_report,
)

REPS = 200
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TASKS = ["LavaGapS7", "DoorKey5x5", "Empty8x8"]
STEPS = (1000, 2000, 3000)


def write_run(
    run_dir: Path,
    name: str,
    *,
    arch: str = "mtppo",
    suite: str | list[str] = "MT3",
    kind: str = "minigrid",
    final: np.ndarray | None = None,
    level: float = 0.5,
    seeds: int = 3,
    steps: tuple[int, ...] = STEPS,
    total_steps: int | None = None,
    diagnostics: bool = False,
) -> Path:
    """A run folder: config.yaml, metrics.csv (scores `final[seed, task]` at the last step, a
    noisy ramp up to `level` before) and optionally diagnostics.csv."""
    rng = np.random.default_rng(zlib.crc32(f"{name}/{arch}".encode()))
    if final is None:
        final = np.clip(level + 0.05 * rng.normal(size=(seeds, len(TASKS))), 0, 1)
    seeds = final.shape[0]
    run_dir.mkdir(parents=True)
    config = {
        "name": name,
        "algo": "ppo",
        "seeds": seeds,
        "env": {"kind": kind, "suite": suite},
        "net": {"arch": arch},
        "train": {"total_steps": total_steps or steps[-1], "eval_every": steps[0]},
    }
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    rows = []
    for step in steps:
        for seed in range(seeds):
            for k, task in enumerate(TASKS):
                if step == steps[-1]:
                    score = final[seed, k]
                else:
                    score = step / steps[-1] * level * (1 + 0.1 * rng.normal())
                rows.append(
                    {
                        "step": step,
                        "seed": seed,
                        "task": task,
                        "eval_return": 10 * score,
                        "eval_score": score,
                        "eval_success": float(score > 0.5),
                        "train_return": 9 * score,
                        "train_score": 0.9 * score,
                        "train_episodes": 4.0,
                    }
                )
    pd.DataFrame(rows).to_csv(run_dir / "metrics.csv", index=False)
    if diagnostics:
        rows = [
            {
                "step": step,
                "seed": seed,
                "dormant_actor": 0.1 * step / steps[-1] + 0.01 * rng.random(),
                "dormant_critic": 0.2 * step / steps[-1] + 0.01 * rng.random(),
                "erank": 60 - 10 * step / steps[-1] + rng.random(),
                "fisher_trace": 1.0 / step + 1e-4 * rng.random(),
                "dormant/encoder/conv_0": 0.05,
                "dormant/actor/hidden": 0.1,
            }
            for step in steps
            for seed in range(seeds)
        ]
        pd.DataFrame(rows).to_csv(run_dir / "diagnostics.csv", index=False)
    return run_dir


def block(markdown: str, heading: str) -> list[list[str]]:
    """The table rows (header first, separator dropped) under `### heading`, as cell lists."""
    lines = markdown.splitlines()
    start = lines.index(f"### {heading}") + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return [rows[0], *rows[2:]]


def column(rows: list[list[str]], bench: str) -> dict[str, str]:
    """method -> cell text of one benchmark column."""
    j = rows[0].index(bench)
    return {row[0]: row[j] for row in rows[1:]}


def assert_png(path: Path) -> None:
    assert path.is_file(), path
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert len(data) > 5_000, (path, len(data))


# --------------------------------------------------------------------------- numbers by hand

# 4 seeds x 3 tasks = 12 scores: the 25% trim drops exactly 3 from each end.
FINAL_12 = np.array(
    [
        [0.10, 0.90, 0.50],
        [0.20, 0.80, 0.55],
        [0.00, 1.00, 0.45],
        [0.30, 0.70, 0.60],
    ]
)
# sorted: 0.00 0.10 0.20 | 0.30 0.45 0.50 0.55 0.60 0.70 | 0.80 0.90 1.00
IQM_12 = (0.30 + 0.45 + 0.50 + 0.55 + 0.60 + 0.70) / 6  # = 3.10 / 6 = 0.51666...
MEAN_12 = 6.10 / 12

# 5 seeds x 3 tasks = 15 scores 0.0, 0.1, ..., 1.4 (shuffled): scipy's trim_mean (rliable's
# aggregate_iqm) cuts int(0.25 * 15) = 3 from each end, leaving the 9 values 0.3 .. 1.1.
FINAL_15 = np.array(
    [
        [1.4, 0.3, 0.7],
        [0.0, 1.1, 0.5],
        [0.9, 0.2, 1.3],
        [0.6, 1.0, 0.1],
        [0.8, 0.4, 1.2],
    ]
)
IQM_15 = (0.3 + 0.4 + 0.5 + 0.6 + 0.7 + 0.8 + 0.9 + 1.0 + 1.1) / 9  # = 6.3 / 9 = 0.7
MEAN_15 = 0.7


@pytest.mark.parametrize(
    ("final", "iqm", "mean"), [(FINAL_12, IQM_12, MEAN_12), (FINAL_15, IQM_15, MEAN_15)]
)
def test_report_reproduces_iqm_by_hand(
    tmp_path: Path, final: np.ndarray, iqm: float, mean: float
) -> None:
    # The hand arithmetic is rliable's definition of the IQM.
    assert rly_metrics.aggregate_iqm(final) == pytest.approx(iqm, abs=1e-12)
    assert stats.trim_mean(final.ravel(), 0.25) == pytest.approx(iqm, abs=1e-12)

    write_run(tmp_path / "runs" / "a", "mt3-gmp", final=final)
    report = write_report([tmp_path / "runs"], tmp_path / "out", reps=REPS, plots=False)

    row = pd.read_csv(tmp_path / "out" / "report.csv").iloc[0]
    assert row["iqm"] == pytest.approx(iqm, abs=1e-12)
    assert row["mean"] == pytest.approx(mean, abs=1e-12)
    assert row["seeds"] == final.shape[0] and row["step"] == STEPS[-1]
    lo, hi = iqm_ci(final, reps=REPS)[1:]  # the CI is iqm_ci's on the final-step matrix
    assert (row["ci_lo"], row["ci_hi"]) == pytest.approx((lo, hi), abs=1e-12)
    assert row["ci_lo"] <= iqm <= row["ci_hi"] and row["ci_lo"] < row["ci_hi"]

    cell = column(block(report.markdown, "MTPPO"), "MT3")["gmp"]
    assert cell == f"{iqm:.3f} [{lo:.3f}, {hi:.3f}]"  # single cell in its column: not bold
    assert (tmp_path / "out" / "report.md").read_text().count(cell) == 1


# --------------------------------------------------------------------------- layout


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """mtppo: dense/gmp/pcgrad/alpha on MT3, gmp on MT5 and on a task list; moe: dense on MT3."""
    root = tmp_path / "runs"
    write_run(root / "mt3-alpha" / "mtppo", "mt3-alpha", level=0.2)
    write_run(root / "mt3-pcgrad" / "mtppo", "mt3-pcgrad", level=0.3)
    write_run(root / "mt3-gmp" / "mtppo", "mt3-gmp", level=0.8, diagnostics=True)
    write_run(root / "mt3-dense" / "mtppo", "mt3-dense", level=0.6, diagnostics=True)
    write_run(root / "mt5-gmp" / "mtppo", "mt5-gmp", suite="MT5", level=0.4)
    write_run(root / "tasks-gmp" / "mtppo", "gmp", suite=["DoorKey5x5", "Empty8x8"], level=0.4)
    write_run(root / "mt3-dense" / "moe", "mt3-dense", arch="moe", level=0.7)
    return root


def test_table_layout(study: Path, tmp_path: Path) -> None:
    report = write_report([study], tmp_path / "out", reps=REPS, plots=False)
    md = report.markdown
    assert md.index("### MTPPO") < md.index("### MoE")

    rows = block(md, "MTPPO")
    assert rows[0] == ["method", "MT3", "MT5", "custom"]  # columns: MT3, MT5, then others
    assert [r[0] for r in rows[1:]] == ["dense", "gmp", "pcgrad", "alpha"]  # fixed order
    mt3 = column(rows, "MT3")
    bold = [m for m, text in mt3.items() if text.startswith("**")]
    assert bold == ["gmp"]  # the best IQM of the column (level 0.8)
    assert mt3["gmp"].endswith("]**")
    mt5 = column(rows, "MT5")
    assert mt5 == {"dense": MISSING, "gmp": mt5["gmp"], "pcgrad": MISSING, "alpha": MISSING}
    assert mt5["gmp"][0].isdigit()  # the only cell of its column: not bold

    moe = block(md, "MoE")
    assert moe[0] == ["method", "MT3", "MT5", "custom"]  # the same columns in every block
    assert moe[1][0] == "dense" and moe[1][2:] == [MISSING, MISSING] and len(moe) == 2

    csv = pd.read_csv(tmp_path / "out" / "report.csv")
    assert tuple(csv.columns) == CSV_COLUMNS
    assert list(zip(csv["arch"], csv["benchmark"], csv["method"], strict=True)) == [
        ("mtppo", "MT3", "dense"),
        ("mtppo", "MT3", "gmp"),
        ("mtppo", "MT3", "pcgrad"),
        ("mtppo", "MT3", "alpha"),
        ("mtppo", "MT5", "gmp"),
        ("mtppo", "custom", "gmp"),
        ("moe", "MT3", "dense"),
    ]
    assert csv["complete"].all() and (csv["seeds"] == 3).all()
    for _, r in csv.iterrows():  # every CSV row is the table's cell
        text = f"{r['iqm']:.3f} [{r['ci_lo']:.3f}, {r['ci_hi']:.3f}]"
        cell = column(block(md, "MTPPO" if r["arch"] == "mtppo" else "MoE"), r["benchmark"])
        assert cell[r["method"]].strip("* ") == text
    assert f"step {STEPS[-1]}" in md and "`eval_score`" in md and "3 seeds per cell" in md


def test_seed_counts_and_dead_seeds(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    write_run(root / "d", "mt3-dense", seeds=3)
    final = np.full((4, 3), 0.5)
    final[2, 1] = np.nan  # a seed dropped after a NaN has no final value
    write_run(root / "g", "mt3-gmp", final=final)
    report = write_report([root], tmp_path / "out", reps=REPS, plots=False)
    assert [c.seeds for c in report.cells] == [3, 3]
    write_run(root / "s", "mt3-set", seeds=5)
    report = write_report([root], tmp_path / "out", reps=REPS, plots=False)
    assert "Seeds per cell: 3, except set/MT3 (5)." in report.markdown
    assert "3–5 seeds per cell" in report.markdown


# --------------------------------------------------------------------------- labels, input


@pytest.mark.parametrize(
    ("name", "suite", "kind", "arch", "expected"),
    [
        ("mt3-gmp-pcgrad", "MT3", "minigrid", "mtppo", ("mtppo", "MT3", "gmp-pcgrad")),
        ("mt5-dense", "mt5", "minigrid", "moore", ("moore", "MT5", "dense")),
        ("MT7-rigl", "MT7", "minigrid", "moe", ("moe", "MT7", "rigl")),
        ("my-gmp", "MT3", "minigrid", "mtppo", ("mtppo", "MT3", "my-gmp")),
        ("mt3", "MT3", "minigrid", "mtppo", ("mtppo", "MT3", "mt3")),
        ("gmp", ["DoorKey5x5", "Empty8x8"], "minigrid", "mtppo", ("mtppo", "custom", "gmp")),
        ("cartpole-ppo", "CartPole-v1", "gymnax", "mlp", ("mlp", "CartPole-v1", "cartpole-ppo")),
        ("cartpole-v1-set", "CartPole-v1", "gymnax", "mlp", ("mlp", "CartPole-v1", "set")),
    ],
)
def test_derive_labels(name, suite, kind, arch, expected) -> None:
    config = {"name": name, "env": {"kind": kind, "suite": suite}, "net": {"arch": arch}}
    assert derive_labels(config) == expected


def test_bad_config_names_the_file(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", "mt3-gmp")
    (run / "config.yaml").write_text(yaml.safe_dump({"name": "mt3-gmp", "env": {"suite": "MT3"}}))
    with pytest.raises(ReportError, match=r"config\.yaml: config has no net\.arch"):
        collect_runs([run])


def test_duplicate_runs_error_lists_both(tmp_path: Path) -> None:
    first = write_run(tmp_path / "runs" / "a" / "mtppo-3seeds", "mt3-gmp")
    second = write_run(tmp_path / "runs" / "b" / "mtppo-5seeds", "mt3-gmp", seeds=5)
    write_run(tmp_path / "runs" / "c", "mt3-gmp", arch="moe")  # another arch: no clash
    with pytest.raises(ValueError, match="same \\(arch, benchmark, method\\)") as info:
        collect_runs([tmp_path / "runs"])
    assert isinstance(info.value, ReportError)
    message = str(info.value)
    assert str(first) in message and str(second) in message and "/c" not in message
    assert "arch mtppo, benchmark MT3, method gmp" in message


def test_discovery_recursive_and_deduplicated(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    a = write_run(root / "mt3-gmp" / "mtppo-3seeds", "mt3-gmp")
    b = write_run(root / "deep" / "er" / "mt5-gmp", "mt5-gmp", suite="MT5")
    (root / "started" / "x").mkdir(parents=True)  # config.yaml, no metrics.csv yet: skipped
    (root / "started" / "x" / "config.yaml").write_text("name: mt7-gmp\n")
    (a / "checkpoints" / "inner").mkdir(parents=True)  # not searched: inside a run folder
    assert find_run_dirs([root, a]) == [b, a]  # sorted walk; `a` given twice is listed once
    assert [r.run_dir for r in collect_runs([a, root])] == [a, b]  # report order: MT3, MT5


def test_missing_or_empty_run_dir(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ReportError, match=f"{missing}: no such folder"):
        write_report([missing], tmp_path / "out")
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    with pytest.raises(ReportError, match=f"{empty}: no run folder"):
        write_report([empty], tmp_path / "out")
    started = tmp_path / "started"
    started.mkdir()
    (started / "config.yaml").write_text("name: mt3-gmp\n")
    with pytest.raises(ReportError, match="no evaluation yet"):
        write_report([started], tmp_path / "out")
    run = write_run(tmp_path / "ok", "mt3-gmp")
    with pytest.raises(ReportError, match=f"{missing}"):  # one bad argument among good ones
        write_report([run, missing], tmp_path / "out")
    with pytest.raises(ReportError, match=r"unknown metric 'nope'"):
        write_report([run], tmp_path / "out", metric="nope")
    assert not (tmp_path / "out").exists()  # nothing written on bad input


def test_incomplete_run_flagged(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    write_run(root / "d", "mt3-dense", level=0.9)
    write_run(root / "g", "mt3-gmp", level=0.2, steps=(1000, 2000), total_steps=3000)
    report = write_report([root], tmp_path / "out", reps=REPS, plots=False)
    mt3 = column(block(report.markdown, "MTPPO"), "MT3")
    assert mt3["gmp"].endswith("] *") and not mt3["gmp"].startswith("**")
    assert mt3["dense"].startswith("**") and mt3["dense"].endswith("]**")  # complete: no mark
    assert f"gmp/MT3 at step 2000 of 3000 (`{root / 'g'}`)" in report.markdown
    assert "steps 2000–3000" in report.markdown
    csv = pd.read_csv(tmp_path / "out" / "report.csv").set_index("method")
    assert not csv.loc["gmp", "complete"] and csv.loc["gmp", "step"] == 2000
    assert csv.loc["dense", "complete"]


# --------------------------------------------------------------------------- figures, CLI


def test_figures_written(study: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = write_report([study], out, reps=REPS)
    pngs = {p.name for p in report.written if p.suffix == ".png"}
    assert pngs == {
        "curves_mtppo_MT3.png",
        "intervals_mtppo_MT3.png",
        "plasticity_mtppo_MT3.png",  # the only group with diagnostics.csv
        "curves_mtppo_MT5.png",
        "intervals_mtppo_MT5.png",
        "curves_mtppo_custom.png",
        "intervals_mtppo_custom.png",
        "curves_moe_MT3.png",
        "intervals_moe_MT3.png",
    }
    assert {p.name for p in out.glob("*.png")} == pngs
    for name in pngs:
        assert_png(out / name)
    md = (out / "report.md").read_text()
    assert "[plasticity](plasticity_mtppo_MT3.png)" in md
    assert "[curves](curves_moe_MT3.png)" in md and "plasticity_moe" not in md


def test_cli_end_to_end(study: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"  # a few runs only: the CLI bootstraps 2000 resamples per cell
    runs = [str(study / "mt3-gmp"), str(study / "mt3-dense")]  # mtppo gmp, dense; moe dense
    assert main(["report", *runs, "--out", str(out), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "### MTPPO" in printed and "### MoE" in printed
    assert [r[0] for r in block(printed, "MTPPO")[1:]] == ["dense", "gmp"]
    assert (out / "report.md").read_text().endswith(printed.split("written:")[0].rstrip() + "\n")
    assert str(out / "report.md") in printed and str(out / "report.csv") in printed
    assert not list(out.glob("*.png"))

    args = [str(study / "mt3-gmp"), str(study / "mt3-dense" / "moe"), "--out", str(out)]
    assert main(["report", *args, "--metric", "eval_return"]) == 0
    printed = capsys.readouterr().out
    assert "`eval_return`" in printed and str(out / "curves_mtppo_MT3.png") in printed
    assert_png(out / "plasticity_mtppo_MT3.png")
    csv = pd.read_csv(out / "report.csv")
    assert list(csv["method"]) == ["gmp", "dense"] and (csv["iqm"] > 1).all()  # returns: 10x

    assert main(["report", str(tmp_path / "missing"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxsparse report: ") and "missing: no such folder" in err


def test_plasticity_table_at_the_last_step_by_hand(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    write_run(root / "d", "mt3-dense", seeds=4, diagnostics=True)
    gmp = write_run(root / "g", "mt3-gmp", seeds=4, diagnostics=True)
    diag = pd.read_csv(gmp / "diagnostics.csv")  # gmp also logs the newer column
    diag["dormant_live_actor"] = 0.5 * diag["dormant_actor"]
    diag.to_csv(gmp / "diagnostics.csv", index=False)
    report = write_report([root], tmp_path / "out", reps=REPS, plots=False)

    frame = pd.read_csv(tmp_path / "out" / "plasticity.csv")
    assert set(frame["method"]) == {"dense", "gmp"} and (frame["step"] == STEPS[-1]).all()
    last = diag[diag["step"] == STEPS[-1]]
    row = frame[(frame["method"] == "gmp") & (frame["metric"] == "erank")].iloc[0]
    assert row["mean"] == pytest.approx(last["erank"].mean()) and row["seeds"] == 4
    assert row["ci_lo"] <= row["mean"] <= row["ci_hi"]
    assert row["ci_lo"] >= last["erank"].min() and row["ci_hi"] <= last["erank"].max()
    live = frame[frame["metric"] == "dormant_live_actor"]
    assert live["method"].tolist() == ["gmp"]
    assert live["mean"].iloc[0] == pytest.approx(0.5 * last["dormant_actor"].mean())

    rows = block(report.markdown, "MTPPO on MT3")
    header = rows[0]
    assert header[:3] == ["method", "step", "dormant neurons, actor"]
    assert header[-1] == "dormant among unpruned neurons, actor"
    cells = {r[0]: dict(zip(header, r, strict=True)) for r in rows[1:]}
    assert cells["dense"]["dormant among unpruned neurons, actor"] == MISSING
    expected = f"{row['mean']:.3g} [{row['ci_lo']:.3g}, {row['ci_hi']:.3g}]"
    assert cells["gmp"]["effective rank (srank, delta 0.01)"] == expected
    assert (tmp_path / "out" / "report.md").read_text().endswith(report.markdown)


def test_no_plasticity_table_without_diagnostics(tmp_path: Path) -> None:
    write_run(tmp_path / "runs" / "d", "mt3-dense")
    report = write_report([tmp_path / "runs"], tmp_path / "out", reps=REPS, plots=False)
    assert "Plasticity" not in report.markdown
    assert not (tmp_path / "out" / "plasticity.csv").exists()
