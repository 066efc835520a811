"""Plots of a run folder: the PNGs exist and are valid for multi-seed, single-seed and
degenerate data, and a folder without CSVs fails with a clear error."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jaxsparse.run.plots import mean_ci_over_seeds, plot_run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TASKS = ("LavaGapS7", "DoorKey5x5", "Empty8x8")


def write_run(
    run_dir: Path,
    seeds: int = 3,
    steps: tuple[int, ...] = (1000, 2000, 3000, 4000),
    constant: float | None = None,
    metrics: bool = True,
    train: bool = True,
) -> Path:
    """A small synthetic run folder: scores rising with steps, noisy across seeds."""
    rng = np.random.default_rng(0)
    run_dir.mkdir(parents=True, exist_ok=True)
    if metrics:
        rows = []
        for step in steps:
            for seed in range(seeds):
                for k, task in enumerate(TASKS):
                    score = step / steps[-1] * (k + 1) / len(TASKS) + 0.05 * rng.normal()
                    score = constant if constant is not None else score
                    rows.append(
                        {
                            "step": step,
                            "seed": seed,
                            "task": task,
                            "eval_return": 10 * score,
                            "eval_score": score,
                            "eval_success": float(score > 0.5),
                            "train_return": np.nan if step == steps[0] else 9 * score,
                            "train_score": np.nan if step == steps[0] else 0.9 * score,
                            "train_episodes": 0.0 if step == steps[0] else 4.0,
                        }
                    )
        pd.DataFrame(rows).to_csv(run_dir / "metrics.csv", index=False)
    if train:
        rows = [
            {
                "step": step,
                "seed": seed,
                "policy_loss": rng.normal(),
                "value_loss": 1.0 / step + 0.01 * rng.random(),
                "entropy": 1.5 - step / steps[-1],
                "sparsity": 0.9,  # constant: zero-width band, must not crash
            }
            for step in steps
            for seed in range(seeds)
        ]
        pd.DataFrame(rows).to_csv(run_dir / "train.csv", index=False)
    return run_dir


def assert_png(path: Path) -> None:
    assert path.is_file(), path
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert len(data) > 5_000, (path, len(data))


NAMES = ["eval_score.png", "eval_score_tasks.png", "train.png"]


def test_plot_run_writes_all_pngs(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "ppo_dense")
    paths = plot_run(run_dir)
    assert [p.name for p in paths] == NAMES
    for path in paths:
        assert path.parent == run_dir / "plots"
        assert_png(path)


def test_plot_run_accepts_str_and_title(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "run")
    paths = plot_run(str(run_dir), title="custom title")
    assert [p.name for p in paths] == NAMES
    for path in paths:
        assert_png(path)


def test_plot_run_single_seed(tmp_path: Path) -> None:
    paths = plot_run(write_run(tmp_path / "one_seed", seeds=1))
    assert [p.name for p in paths] == NAMES
    for path in paths:
        assert_png(path)


def test_plot_run_all_equal_scores(tmp_path: Path) -> None:
    paths = plot_run(write_run(tmp_path / "flat", constant=0.25))
    for path in paths:
        assert_png(path)


@pytest.mark.parametrize(
    ("metrics", "train", "names"),
    [(True, False, NAMES[:2]), (False, True, NAMES[2:])],
)
def test_plot_run_with_one_csv(tmp_path: Path, metrics: bool, train: bool, names: list) -> None:
    run_dir = write_run(tmp_path / "partial", metrics=metrics, train=train)
    paths = plot_run(run_dir)
    assert [p.name for p in paths] == names
    for path in paths:
        assert_png(path)


def test_plot_run_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_run"
    with pytest.raises(FileNotFoundError, match="no_such_run"):
        plot_run(missing)
    empty = tmp_path / "empty_run"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="empty_run"):
        plot_run(empty)


def test_mean_ci_over_seeds() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(size=(5, 4))
    mean, lo, hi = mean_ci_over_seeds(values)
    np.testing.assert_allclose(mean, values.mean(axis=0))
    assert np.all(lo <= mean) and np.all(mean <= hi) and np.all(lo < hi)
    # Reproducible: the bootstrap uses a fixed seed.
    lo2, hi2 = mean_ci_over_seeds(values)[1:]
    np.testing.assert_array_equal(lo, lo2)
    np.testing.assert_array_equal(hi, hi2)

    # One seed: no band. All-equal values: the band collapses onto the mean.
    assert np.isnan(mean_ci_over_seeds(values[:1])[1]).all()
    flat = np.full((3, 4), 0.7)
    mean, lo, hi = mean_ci_over_seeds(flat)
    np.testing.assert_array_equal(lo, mean)
    np.testing.assert_array_equal(hi, mean)

    # A seed missing at the last point: mean and band from the seeds present there.
    ragged = values.copy()
    ragged[0, -1] = np.nan
    mean, lo, hi = mean_ci_over_seeds(ragged)
    assert np.isclose(mean[-1], values[1:, -1].mean())
    assert lo[-1] <= mean[-1] <= hi[-1]


def test_plot_run_draws_plasticity_diagnostics(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path / "diag")
    rng = np.random.default_rng(1)
    rows = [
        {
            "step": step,
            "seed": seed,
            "dormant_actor": 0.01 * step / 100 + 0.001 * rng.random(),
            "dormant_critic": 0.02,
            "erank": 300 - step // 10,
            "fisher_trace": 5.0 + rng.random(),
            "dormant/encoder/conv_0": 0.0,
        }
        for step in (100, 200, 300)
        for seed in range(3)
    ]
    pd.DataFrame(rows).to_csv(run_dir / "diagnostics.csv", index=False)
    paths = plot_run(run_dir)
    assert [p.name for p in paths] == [*NAMES, "plasticity.png"]
    assert_png(paths[-1])
