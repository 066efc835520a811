"""Final-score aggregates: score matrix extraction, IQM with rliable's stratified-bootstrap CI,
and the Markdown summary table."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from jaxsparse.run.aggregate import iqm_ci, score_matrix, summary_table

REPS = 200


def write_metrics(run_dir: Path, scores: dict[int, np.ndarray], tasks: list[str]) -> Path:
    """metrics.csv with `scores[step][seed, task]`; rows listed with seeds in reverse order."""
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for step, matrix in scores.items():
        for seed in reversed(range(matrix.shape[0])):
            for k, task in enumerate(tasks):
                rows.append(
                    {
                        "step": step,
                        "seed": seed,
                        "task": task,
                        "eval_return": 10 * matrix[seed, k],
                        "eval_score": matrix[seed, k],
                        "eval_success": float(matrix[seed, k] > 0.5),
                        "train_return": np.nan,
                        "train_score": np.nan,
                        "train_episodes": 0.0,
                    }
                )
    pd.DataFrame(rows).to_csv(run_dir / "metrics.csv", index=False)
    return run_dir


# Tasks deliberately not in alphabetical order: the matrix keeps the file's order.
TASKS = ["LavaGapS7", "DoorKey5x5", "Empty8x8"]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    scores = {
        1000: rng.random((4, 3)) * 0.2,
        2000: rng.random((4, 3)) * 0.5,
        3000: 0.5 + 0.5 * rng.random((4, 3)),
    }
    run = write_metrics(tmp_path / "ppo_sparse", scores, TASKS)
    np.save(tmp_path / "last.npy", scores[3000])
    np.save(tmp_path / "first.npy", scores[1000])
    return run


def test_score_matrix_last_step_and_order(run_dir: Path) -> None:
    matrix, tasks = score_matrix(run_dir)
    assert tasks == TASKS
    assert matrix.shape == (4, 3)
    np.testing.assert_allclose(matrix, np.load(run_dir.parent / "last.npy"))


def test_score_matrix_explicit_step_and_metric(run_dir: Path) -> None:
    matrix, _ = score_matrix(str(run_dir), step=1000)
    np.testing.assert_allclose(matrix, np.load(run_dir.parent / "first.npy"))
    returns, _ = score_matrix(run_dir, metric="eval_return", step=1000)
    np.testing.assert_allclose(returns, 10 * matrix)


def test_score_matrix_errors(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"step 1500.*\[1000, 2000, 3000\]"):
        score_matrix(run_dir, step=1500)
    with pytest.raises(ValueError, match=r"unknown metric 'nope'.*eval_score"):
        score_matrix(run_dir, metric="nope")
    with pytest.raises(FileNotFoundError, match="missing_run"):
        score_matrix(tmp_path / "missing_run")


def test_iqm_ci_matches_trim_mean() -> None:
    scores = np.random.default_rng(3).random((5, 4))  # 20 entries: divisible by 4
    iqm, lo, hi = iqm_ci(scores, reps=REPS)
    assert iqm == pytest.approx(stats.trim_mean(scores.ravel(), 0.25))
    assert lo <= iqm <= hi
    assert lo < hi


def test_iqm_ci_deterministic_and_keeps_global_rng() -> None:
    scores = np.random.default_rng(4).random((3, 4))
    np.random.seed(123)
    expected_next = np.random.random()
    np.random.seed(123)
    first = iqm_ci(scores, reps=REPS, seed=7)
    assert np.random.random() == expected_next  # the caller's global stream is untouched
    assert iqm_ci(scores, reps=REPS, seed=7) == first
    assert iqm_ci(scores, reps=REPS, seed=8) != first


def test_iqm_ci_degenerate_inputs() -> None:
    iqm, lo, hi = iqm_ci(np.full((3, 4), 0.3), reps=REPS)
    assert lo <= iqm <= hi
    assert iqm == pytest.approx(0.3) and hi - lo == pytest.approx(0.0, abs=1e-12)
    iqm, lo, hi = iqm_ci(np.arange(4.0)[None, :], reps=REPS)  # one seed: no resampling spread
    assert iqm == pytest.approx(1.5) and lo == pytest.approx(iqm) and hi == pytest.approx(iqm)


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (4,), (2, 2, 2)])
def test_iqm_ci_rejects_bad_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="shape"):
        iqm_ci(np.zeros(shape), reps=REPS)


def test_iqm_ci_rejects_nan() -> None:
    scores = np.ones((3, 4))
    scores[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        iqm_ci(scores, reps=REPS)


def test_summary_table(run_dir: Path, tmp_path: Path) -> None:
    other = write_metrics(tmp_path / "ppo_dense", {500: np.full((2, 3), 0.25)}, TASKS)
    table = summary_table([run_dir, other], reps=REPS)
    lines = table.strip().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("| run | seeds | tasks | final step | IQM | 95% CI | mean |")
    scores = np.load(tmp_path / "last.npy")
    iqm, lo, hi = iqm_ci(scores, reps=REPS)
    assert lines[2] == (
        f"| ppo_sparse | 4 | 3 | 3000 | {iqm:.3f} | [{lo:.3f}, {hi:.3f}] | {scores.mean():.3f} |"
    )
    assert lines[3] == "| ppo_dense | 2 | 3 | 500 | 0.250 | [0.250, 0.250] | 0.250 |"

    labelled = summary_table([run_dir, other], labels=["sparse 90%", "dense"], reps=REPS)
    assert "| sparse 90% | 4 |" in labelled and "| dense | 2 |" in labelled
    with pytest.raises(ValueError, match="labels"):
        summary_table([run_dir], labels=["a", "b"])
