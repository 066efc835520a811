"""Learning-curve plots for one run folder (`metrics.csv`, `train.csv`) as PNG files.

Curves show the mean over seeds with a 95% percentile-bootstrap band over seeds, so runs with
few seeds show how much of a difference is noise. Figures are built with
`matplotlib.figure.Figure` (no pyplot), so no global backend or figure state is touched.
"""

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy import stats

METRICS_CSV = "metrics.csv"
TRAIN_CSV = "train.csv"
DIAGNOSTICS_CSV = "diagnostics.csv"
PLOTS_DIR = "plots"

STEP_LABEL = "environment steps per task"
SCORE_LABEL = "normalised score"

CONFIDENCE = 0.95
# Bootstrap resamples per band; a fixed seed keeps the plotted bands identical across re-plots.
N_RESAMPLES = 2000
CI_SEED = 0
_BATCH = 200  # resamples per vectorised batch: bounds memory for long curves with many seeds
_DPI = 120


def plot_run(run_dir: str | Path, *, title: str | None = None) -> list[Path]:
    """Plot a run folder's CSVs into `run_dir/plots/` and return the written PNG paths.

    Writes `eval_score.png` (mean over tasks, then mean and 95% CI over seeds) and
    `eval_score_tasks.png` (one panel per task) from `metrics.csv`, and `train.png` (one panel
    per column other than step/seed) from `train.csv`, for whichever of the two files exist, and
    `plasticity.png` (dormant fractions, srank, Fisher trace per layer) from `diagnostics.csv`;
    with the mask generator's logs there also `mask_similarity.png` (the task-by-task similarity
    matrices over training) and `active_neurons.png` (neurons each task uses, per layer).
    `title` is the figure suptitle; it defaults to the folder name.
    """
    run_dir = Path(run_dir)
    metrics_path, train_path = run_dir / METRICS_CSV, run_dir / TRAIN_CSV
    if not metrics_path.is_file() and not train_path.is_file():
        raise FileNotFoundError(
            f"no {METRICS_CSV} or {TRAIN_CSV} in run folder {run_dir} "
            f"({'folder exists' if run_dir.is_dir() else 'folder does not exist'})"
        )
    if title is None:
        title = run_dir.resolve().name

    out_dir = run_dir / PLOTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if metrics_path.is_file():
        metrics = _read_csv(metrics_path, ("step", "seed", "task", "eval_score"), {"task": str})
        if len(metrics):
            written.append(_plot_overall(metrics, out_dir / "eval_score.png", title))
            written.append(_plot_tasks(metrics, out_dir / "eval_score_tasks.png", title))
    if train_path.is_file():
        train = _read_csv(train_path, ("step", "seed"), None)
        path = _plot_train(train, out_dir / "train.png", f"{title}: training statistics")
        if path is not None:
            written.append(path)
    diag_path = run_dir / DIAGNOSTICS_CSV
    if diag_path.is_file():
        diag = _read_csv(diag_path, ("step", "seed"), None)
        per_task = [c for c in diag.columns if is_maskgen_column(c)]
        path = _plot_train(
            diag.drop(columns=per_task),
            out_dir / "plasticity.png",
            f"{title}: plasticity diagnostics",
        )
        if path is not None:
            written.append(path)
        names = list(pd.unique(metrics["task"])) if metrics_path.is_file() else None
        for fn, name in (
            (plot_mask_similarity, "mask_similarity"),
            (plot_active, "active_neurons"),
        ):
            path = fn(diag, out_dir / f"{name}.png", title=title, task_names=names)
            if path is not None:
                written.append(path)
    return written


# ------------------------------------------------------------------ the mask generator's logs
_MASKGEN_COLUMN = re.compile(r"^(actor_mask|critic_mask|policy)_sim/|^(actor|critic)_active_\d+/")


def is_maskgen_column(name: str) -> bool:
    """A per-task-pair or per-task column of the mask generator's diagnostics."""
    return _MASKGEN_COLUMN.match(name) is not None


SIMILARITY_KINDS = {
    "actor_mask": "actor masks",
    "critic_mask": "critic masks",
    "policy": "policies (VAE)",
}


def similarity_matrices(diag: pd.DataFrame, kind: str) -> tuple[np.ndarray, np.ndarray] | None:
    """``(steps [S], matrices [S, T, T])``: the mean over seeds of the ``{kind}_sim/{i}-{j}``
    columns of a ``diagnostics.csv`` frame (upper triangles, mirrored; diagonal 1), or None when
    the frame has none."""
    prefix = f"{kind}_sim/"
    pairs = []
    for col in diag.columns:
        if col.startswith(prefix):
            i, j = (int(x) for x in col[len(prefix) :].split("-"))
            pairs.append((i, j, col))
    if not pairs:
        return None
    n = max(max(i, j) for i, j, _ in pairs) + 1
    means = diag.groupby("step")[[c for *_, c in pairs]].mean()
    mats = np.ones((len(means), n, n))
    for i, j, col in pairs:
        mats[:, i, j] = mats[:, j, i] = pd.to_numeric(means[col], errors="coerce").to_numpy()
    return means.index.to_numpy(), mats


def plot_mask_similarity(
    diag: pd.DataFrame,
    path: str | Path,
    *,
    title: str = "",
    task_names: Sequence[str] | None = None,
    max_steps: int = 5,
) -> Path | None:
    """Heat maps of the task-by-task similarity of the actor's masks, the critics' masks and the
    policies (rows) at up to ``max_steps`` evaluations evenly spread over training (columns),
    mean over seeds. None (no file) without such columns."""
    found = {k: similarity_matrices(diag, k) for k in SIMILARITY_KINDS}
    found = {k: v for k, v in found.items() if v is not None}
    if not found:
        return None
    steps = next(iter(found.values()))[0]
    picks = np.unique(
        np.linspace(0, len(steps) - 1, min(max_steps, len(steps))).round().astype(int)
    )
    n = next(iter(found.values()))[1].shape[1]
    names = list(task_names) if task_names is not None and len(task_names) == n else None
    labels = [str(x).removesuffix("-v3") for x in names] if names else [str(i) for i in range(n)]
    fig = Figure(figsize=(2.6 * len(picks) + 1.2, 2.6 * len(found) + 0.6), layout="constrained")
    axes = fig.subplots(len(found), len(picks), squeeze=False)
    image = None
    for r, (kind, (kind_steps, mats)) in enumerate(found.items()):
        for c, pick in enumerate(picks):
            ax = axes[r][c]
            image = ax.imshow(mats[pick], vmin=0.0, vmax=1.0, cmap="viridis")
            ax.set_xticks(range(n), labels if r == len(found) - 1 else [], rotation=90, fontsize=6)
            ax.set_yticks(range(n), labels if c == 0 else [], fontsize=6)
            if r == 0:
                ax.set_title(f"step {int(kind_steps[pick]):,}", fontsize="small")
            if c == 0:
                ax.set_ylabel(SIMILARITY_KINDS[kind])
    fig.colorbar(image, ax=axes, shrink=0.6, label="similarity")
    fig.suptitle(f"{title}: task-by-task similarity, mean over seeds" if title else "")
    return _save(fig, Path(path))


def plot_active(
    diag: pd.DataFrame,
    path: str | Path,
    *,
    title: str = "",
    task_names: Sequence[str] | None = None,
) -> Path | None:
    """Bars of the neurons each task uses per hidden layer (``{net}_active_{layer}/{task}``) at
    the last evaluation, mean over seeds, one panel per network. None without such columns."""
    cols: dict[str, dict[tuple[int, int], str]] = {}
    for col in diag.columns:
        for net in ("actor", "critic"):
            head = f"{net}_active_"
            if col.startswith(head) and "/" in col:
                layer, task = (int(x) for x in col[len(head) :].split("/"))
                cols.setdefault(net, {})[layer, task] = col
    if not cols:
        return None
    last = diag[diag["step"] == diag["step"].max()]
    fig = Figure(figsize=(5.5 * len(cols), 3.8), layout="constrained")
    axes = fig.subplots(1, len(cols), squeeze=False)[0]
    for ax, (net, found) in zip(axes, cols.items(), strict=True):
        layers = sorted({layer for layer, _ in found})
        tasks = sorted({t for _, t in found})
        names = (
            list(task_names) if task_names is not None and len(task_names) == len(tasks) else None
        )
        width = 0.8 / len(layers)
        for k, layer in enumerate(layers):
            heights = [float(pd.to_numeric(last[found[layer, t]]).mean()) for t in tasks]
            ax.bar(np.arange(len(tasks)) + k * width, heights, width, label=f"layer {layer}")
        ax.set_xticks(
            np.arange(len(tasks)) + 0.4 - width / 2,
            [str(n).removesuffix("-v3") for n in names] if names else tasks,
            rotation=90,
            fontsize=7,
        )
        ax.set_ylabel("neurons used (on for some state)")
        ax.set_title(f"{net} (step {int(diag['step'].max()):,})")
        ax.legend(fontsize="small")
    fig.suptitle(f"{title}: neurons each task uses" if title else "")
    return _save(fig, Path(path))


# --------------------------------------------------------------------------- statistics


def mean_ci_over_seeds(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and 95% percentile-bootstrap CI over seeds (axis 0) of a `[seeds, points]` array.

    NaN marks a missing value (e.g. a seed that has not reached a step yet): the mean skips it
    and the band uses the seeds present. With fewer than two seeds at a point the band is NaN
    (not drawn); all-equal values give a zero-width band.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"expected a [seeds, points] array, got shape {values.shape}")
    present = ~np.isnan(values)
    count = present.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, np.nansum(values, axis=0) / np.maximum(count, 1), np.nan)
    lo = np.full(values.shape[1], np.nan)
    hi = np.full(values.shape[1], np.nan)
    if values.shape[0] < 2:
        return mean, lo, hi

    full = count == values.shape[0]
    if full.any():  # one vectorised bootstrap over every point where all seeds are present
        lo[full], hi[full] = _bootstrap_ci(values[:, full])
    for j in np.flatnonzero(~full & (count >= 2)):  # ragged points: the seeds present there
        (lo[j],), (hi[j],) = _bootstrap_ci(values[present[:, j], j][:, None])
    # Where all seeds agree the band is exactly the mean line (no rounding sliver around it).
    high = np.where(present, values, -np.inf).max(axis=0)
    low = np.where(present, values, np.inf).min(axis=0)
    with np.errstate(invalid="ignore"):  # -inf - inf on columns without values
        spread = high - low
    flat = (count >= 2) & (spread == 0)
    lo[flat] = hi[flat] = mean[flat]
    return mean, lo, hi


def _bootstrap_ci(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Percentile-bootstrap CI of the mean over axis 0, vectorised over axis 1."""
    if np.all(values == values[0]):  # degenerate: every resample equals the mean
        return values[0].copy(), values[0].copy()
    res = stats.bootstrap(
        (values,),
        np.mean,
        axis=0,
        vectorized=True,
        method="percentile",
        confidence_level=CONFIDENCE,
        n_resamples=N_RESAMPLES,
        batch=_BATCH,
        rng=CI_SEED,
    )
    return np.asarray(res.confidence_interval.low), np.asarray(res.confidence_interval.high)


# --------------------------------------------------------------------------- figures


def _read_csv(path: Path, required: Sequence[str], dtype: dict[str, type] | None) -> pd.DataFrame:
    """Read a run CSV and check that the columns the plots need are there."""
    df = pd.read_csv(path, dtype=dtype)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}; columns: {list(df.columns)}")
    return df


def _seed_step_matrix(df: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """`[seeds, steps]` matrix of `column` (mean over duplicate rows) and the sorted steps."""
    table = (
        df.pivot_table(index="seed", columns="step", values=column, aggfunc="mean", dropna=False)
        .sort_index(axis=0)
        .sort_index(axis=1)
    )
    return table.to_numpy(dtype=float), table.columns.to_numpy()


def _draw(ax: Axes, steps: np.ndarray, values: np.ndarray, label: str | None = None) -> None:
    """Mean line over seeds plus its 95% CI band (the band only where it is defined)."""
    mean, lo, hi = mean_ci_over_seeds(values)
    n = values.shape[0]
    line_label = label or f"mean over {n} seed{'s' if n != 1 else ''}"
    (line,) = ax.plot(steps, mean, marker="." if len(steps) < 30 else None, label=line_label)
    if np.isfinite(lo).any():
        ax.fill_between(
            steps,
            lo,
            hi,
            where=np.isfinite(lo),
            alpha=0.25,
            color=line.get_color(),
            linewidth=0,
            label=f"{CONFIDENCE:.0%} CI",
        )
    ax.grid(True, alpha=0.3)


def _grid(n: int, title: str, max_cols: int = 4) -> tuple[Figure, list[Axes]]:
    """A figure with `n` panels in a grid of at most `max_cols` columns; unused panels hidden."""
    cols = min(n, max_cols)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.8 * cols, 3.0 * rows + 0.6), layout="constrained")
    axes = list(np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig, axes[:n]


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=_DPI, format="png")
    return path


def _plot_overall(metrics: pd.DataFrame, path: Path, title: str) -> Path:
    """Per seed the mean over tasks of `eval_score`, then mean and CI over seeds."""
    per_seed = metrics.groupby(["step", "seed"], as_index=False)["eval_score"].mean()
    values, steps = _seed_step_matrix(per_seed, "eval_score")
    num_tasks = metrics["task"].nunique()

    fig = Figure(figsize=(7.0, 4.5), layout="constrained")
    ax = fig.add_subplot()
    if values.shape[0] > 1:  # thin per-seed curves show the spread behind the band
        for i, seed_curve in enumerate(values):
            ax.plot(
                steps,
                seed_curve,
                color="grey",
                alpha=0.35,
                linewidth=0.8,
                label="single seeds" if i == 0 else None,
            )
    _draw(ax, steps, values)
    ax.set_xlabel(STEP_LABEL)
    ax.set_ylabel(SCORE_LABEL)
    ax.set_title(f"evaluation score, mean over {num_tasks} task{'s' if num_tasks != 1 else ''}")
    ax.legend(loc="best", fontsize="small")
    fig.suptitle(title)
    return _save(fig, path)


def _plot_tasks(metrics: pd.DataFrame, path: Path, title: str) -> Path:
    """One panel per task (order of first appearance): mean and CI of `eval_score` over seeds."""
    tasks = list(pd.unique(metrics["task"]))
    fig, axes = _grid(len(tasks), f"{title}: evaluation score per task")
    for i, (ax, task) in enumerate(zip(axes, tasks, strict=True)):
        values, steps = _seed_step_matrix(metrics[metrics["task"] == task], "eval_score")
        _draw(ax, steps, values)
        ax.set_title(str(task))
        ax.set_xlabel(STEP_LABEL)
        ax.set_ylabel(SCORE_LABEL)
        if i == 0:
            ax.legend(loc="best", fontsize="small")
    return _save(fig, path)


def _plot_train(train: pd.DataFrame, path: Path, heading: str) -> Path | None:
    """One panel per training-metric column; `None` (no file) if there is no such column."""
    columns = []
    for col in train.columns:
        if col in ("step", "seed"):
            continue
        train[col] = pd.to_numeric(train[col], errors="coerce")
        if train[col].notna().any():
            columns.append(col)
    if not columns or not len(train):
        return None

    fig, axes = _grid(len(columns), heading)
    for i, (ax, col) in enumerate(zip(axes, columns, strict=True)):
        values, steps = _seed_step_matrix(train, col)
        _draw(ax, steps, values)
        ax.set_title(col)
        ax.set_xlabel(STEP_LABEL)
        ax.set_ylabel(col)
        if i == 0:
            ax.legend(loc="best", fontsize="small")
    return _save(fig, path)
