"""Final-score aggregates of run folders: IQM with stratified-bootstrap CIs (rliable).

The interquartile mean over all (seed, task) scores is robust to outlier tasks and seeds, and
its CI resamples seeds within each task (Agarwal et al., 2021, "Deep RL at the Edge of the
Statistical Precipice"), which is the honest error bar for a handful of seeds.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from rliable import library as rly
from rliable import metrics

METRICS_CSV = "metrics.csv"
_MAX_LISTED_STEPS = 20


def score_matrix(
    run_dir: str | Path, metric: str = "eval_score", step: int | None = None
) -> tuple[np.ndarray, list[str]]:
    """The `[num_seeds, num_tasks]` matrix of `metric` at `step` from `run_dir/metrics.csv`.

    `step` defaults to the last step in the file. Rows are seeds in ascending order, columns are
    tasks in order of first appearance in the file (returned as the second element). A
    (seed, task) pair without a row at `step` is NaN, as are NaN values in the file.
    """
    path = Path(run_dir) / METRICS_CSV
    if not path.is_file():
        raise FileNotFoundError(f"no {METRICS_CSV} in run folder {Path(run_dir)}")
    df = pd.read_csv(path, dtype={"task": str})
    for col in ("step", "seed", "task"):
        if col not in df.columns:
            raise ValueError(f"{path} lacks column {col!r}; columns: {list(df.columns)}")
    value_columns = [c for c in df.columns if c not in ("step", "seed", "task")]
    if metric not in value_columns:
        raise ValueError(f"unknown metric {metric!r} in {path}; columns: {value_columns}")
    if df.empty:
        raise ValueError(f"{path} has no rows")

    steps = np.sort(df["step"].unique())
    if step is None:
        step = int(steps[-1])
    elif step not in set(steps.tolist()):
        raise ValueError(f"step {step} not in {path}; available steps: {_list_steps(steps)}")

    tasks = [str(t) for t in pd.unique(df["task"])]  # order of first appearance, whole file
    at_step = df[df["step"] == step]
    duplicated = at_step.duplicated(["seed", "task"])
    if duplicated.any():
        first = at_step[duplicated].iloc[0]
        raise ValueError(
            f"{path} has several rows for step {step}, seed {first['seed']}, task {first['task']}"
        )
    seeds = np.sort(df["seed"].unique())
    table = at_step.pivot(index="seed", columns="task", values=metric)
    table = table.reindex(index=seeds, columns=tasks)
    return table.to_numpy(dtype=float), tasks


def iqm_ci(
    scores: np.ndarray, reps: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Interquartile mean of all entries of `scores` `[num_seeds, num_tasks]` and its CI.

    Returns `(iqm, lo, hi)`: the IQM (25% trimmed mean over the flattened matrix, rliable's
    `aggregate_iqm`) and the `confidence` percentile CI of rliable's stratified bootstrap
    (seeds resampled within each task, `reps` resamples). rliable draws its resample indices
    from numpy's global RNG, so this seeds that RNG with `seed` for the call and restores its
    previous state afterwards: the result is deterministic for a fixed `seed` and the caller's
    global random stream is left untouched (not thread-safe against concurrent global-RNG users).
    """
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2 or scores.size == 0:
        raise ValueError(
            f"scores must be a non-empty [num_seeds, num_tasks] matrix, got shape {scores.shape}"
        )
    if np.isnan(scores).any():
        where = np.argwhere(np.isnan(scores))[:5].tolist()
        raise ValueError(
            f"scores contain {int(np.isnan(scores).sum())} NaN entries "
            f"(first [seed, task] indices: {where}); drop or fill the missing runs first"
        )
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")

    state = np.random.get_state()
    np.random.seed(seed)
    try:
        point, interval = rly.get_interval_estimates(
            {"run": scores},
            lambda x: np.array([metrics.aggregate_iqm(x)]),
            reps=reps,
            confidence_interval_size=confidence,
        )
    finally:
        np.random.set_state(state)
    iqm = float(point["run"][0])
    lo, hi = (float(v) for v in np.asarray(interval["run"]).reshape(2))
    # With (nearly) all-equal scores, rounding in the resampled means can put a bound a few ulp
    # past the point estimate; snap those. Real differences (a skewed bootstrap distribution
    # can leave the IQM outside its percentile interval) are reported as they are.
    if lo > iqm and np.isclose(lo, iqm, rtol=1e-12, atol=1e-12):
        lo = iqm
    if hi < iqm and np.isclose(hi, iqm, rtol=1e-12, atol=1e-12):
        hi = iqm
    return iqm, lo, hi


def summary_table(
    run_dirs: Sequence[str | Path],
    labels: Sequence[str] | None = None,
    metric: str = "eval_score",
    *,
    reps: int = 2000,
    seed: int = 0,
) -> str:
    """A Markdown table with one row per run: final-step IQM, its 95% CI and the plain mean.

    Columns: run (label, default the folder name), seeds, tasks, final step, IQM, 95% CI as
    "[lo, hi]", mean; numbers with three decimals. `reps` and `seed` go to `iqm_ci`.
    """
    run_dirs = [Path(d) for d in run_dirs]
    if labels is None:
        labels = [d.resolve().name for d in run_dirs]
    elif len(labels) != len(run_dirs):
        raise ValueError(f"got {len(labels)} labels for {len(run_dirs)} run folders")

    lines = [
        "| run | seeds | tasks | final step | IQM | 95% CI | mean |",
        "| --- | ---: | ---: | ---: | ---: | :---: | ---: |",
    ]
    for run_dir, label in zip(run_dirs, labels, strict=True):
        scores, tasks = score_matrix(run_dir, metric=metric)
        final_step = _last_step(run_dir)
        iqm, lo, hi = iqm_ci(scores, reps=reps, seed=seed)
        name = str(label).replace("|", r"\|")
        lines.append(
            f"| {name} | {scores.shape[0]} | {len(tasks)} | {final_step} | {iqm:.3f} "
            f"| [{lo:.3f}, {hi:.3f}] | {float(np.mean(scores)):.3f} |"
        )
    return "\n".join(lines) + "\n"


def _last_step(run_dir: Path) -> int:
    """The last step in `run_dir/metrics.csv` (the step `score_matrix` uses by default)."""
    return int(pd.read_csv(run_dir / METRICS_CSV, usecols=["step"])["step"].max())


def _list_steps(steps: np.ndarray) -> str:
    """The steps for an error message, eliding the middle of long lists."""
    values = [int(s) for s in steps]
    if len(values) <= _MAX_LISTED_STEPS:
        return str(values)
    half = _MAX_LISTED_STEPS // 2
    head = ", ".join(map(str, values[:half]))
    tail = ", ".join(map(str, values[-half:]))
    return f"[{head}, ..., {tail}] ({len(values)} steps)"
