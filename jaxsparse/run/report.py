"""The study report: every run folder under the given paths in one table laid out like the paper's.

One block per architecture (``### MTPPO``, ...), rows = methods in a fixed order (dense, gmp, set,
..., then others alphabetically), columns = benchmarks (MT3, MT5, MT7, then others), cells = the
IQM over seeds x tasks of the final normalised score with its 95% stratified-bootstrap CI
(`aggregate.iqm_ci`), the best IQM of each column in bold. Per (architecture, benchmark) it draws
learning curves, the final-score intervals and, for runs with ``diagnostics.csv``, the plasticity
statistics (dormant neurons, effective rank, Fisher trace) over training.

A run's labels come from its ``config.yaml``: ``arch`` = ``net.arch``; ``benchmark`` = ``env.suite``
upper-cased (a gymnax id as it is, a task list ``custom``); ``method`` = the experiment ``name``
without a leading ``<benchmark>-`` (``mt3-gmp-pcgrad`` -> ``gmp-pcgrad``). Two runs with the same
labels are an error (one run per cell); a run that has not reached ``train.total_steps`` is
reported at its last step and marked ``*``.

Written into the output folder: ``report.md`` (the table, with links to the figures, then the
plasticity statistics at the last evaluation per method), ``report.csv`` (one row per cell),
``plasticity.csv`` (those statistics, one row per run and statistic) and the figures
``curves_<arch>_<benchmark>.png``, ``intervals_<arch>_<benchmark>.png`` and
``plasticity_<arch>_<benchmark>.png``.
"""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
import yaml
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from jaxsparse.run.aggregate import METRICS_CSV, _last_step, iqm_ci, score_matrix
from jaxsparse.run.plots import (
    CONFIDENCE,
    DIAGNOSTICS_CSV,
    STEP_LABEL,
    _save,
    _seed_step_matrix,
    mean_ci_over_seeds,
    plot_mask_similarity,
)

CONFIG_YAML = "config.yaml"
REPORT_MD = "report.md"
REPORT_CSV = "report.csv"
DEFAULT_METRIC = "eval_score"
DEFAULT_OUT = "report"

ARCH_ORDER = ("mtppo", "moe", "moore", "mlp")
ARCH_NAMES = {"mtppo": "MTPPO", "moe": "MoE", "moore": "MOORE", "mlp": "MLP"}
BENCHMARK_ORDER = ("MT3", "MT5", "MT7")
METHOD_ORDER = (
    "dense",
    "gmp",
    "set",
    "rigl",
    "static",
    "grow",
    "mst",
    "redo",
    "reset",
    "wd",
    "ln",
    "pcgrad",
    "gmp-pcgrad",
    "cagrad",
    "gmp-cagrad",
)
CUSTOM_BENCHMARK = "custom"  # env.suite given as a task list
PLASTICITY_COLUMNS = (
    "dormant_actor",
    "dormant_critic",
    "erank",
    "fisher_trace",
    "dormant_live_actor",
    "dormant_live_critic",
)
PLASTICITY_LABELS = {
    "dormant_actor": "dormant neurons, actor",
    "dormant_critic": "dormant neurons, critic",
    "dormant_live_actor": "dormant among unpruned neurons, actor",
    "dormant_live_critic": "dormant among unpruned neurons, critic",
    "erank": "effective rank (srank, delta 0.01)",
    "fisher_trace": "Fisher trace",
}
CSV_COLUMNS = (
    "arch",
    "benchmark",
    "method",
    "seeds",
    "step",
    "iqm",
    "ci_lo",
    "ci_hi",
    "mean",
    "complete",
    "run_dir",
)

PLASTICITY_CSV = "plasticity.csv"
PLASTICITY_CSV_COLUMNS = (
    "arch",
    "benchmark",
    "method",
    "seeds",
    "step",
    "metric",
    "mean",
    "ci_lo",
    "ci_hi",
)
MISSING = "–"  # an (arch, method, benchmark) without a run
INCOMPLETE = "*"  # marks a run that stopped before train.total_steps


class ReportError(ValueError):
    """Bad report input (a missing folder, no runs, duplicate runs, an unreadable run)."""


@dataclass(frozen=True)
class Run:
    """One run folder and the labels it gets in the report."""

    run_dir: Path
    name: str
    arch: str
    benchmark: str
    method: str
    last_step: int  # the last step in metrics.csv: the step the report scores
    total_steps: int | None  # train.total_steps of the config (None: not in the config)
    has_diagnostics: bool

    @property
    def complete(self) -> bool:
        return self.total_steps is None or self.last_step >= self.total_steps

    @property
    def key(self) -> tuple[str, str, str]:
        return self.arch, self.benchmark, self.method


@dataclass(frozen=True)
class Cell:
    """The final-score statistics of one run: one table cell and one row of report.csv."""

    run: Run
    seeds: int  # seeds with a value for every task at `step`
    tasks: int
    step: int
    iqm: float
    ci_lo: float
    ci_hi: float
    mean: float


@dataclass
class Report:
    """What `write_report` produced: the cells, the Markdown table and the files written."""

    cells: list[Cell]
    metric: str
    markdown: str  # the table as printed (report.md adds links to the figures)
    out_dir: Path
    written: list[Path] = field(default_factory=list)


# --------------------------------------------------------------------------- discovery


def derive_labels(config: Mapping[str, Any]) -> tuple[str, str, str]:
    """``(arch, benchmark, method)`` of a run from its (resolved) config dict.

    ``benchmark`` is ``env.suite`` upper-cased for a MiniGrid suite name (``mt3`` -> ``MT3``),
    the id as it is for gymnax (``env.kind: gymnax``) and ``custom`` for a task list; ``method``
    is ``name`` with a leading ``<benchmark lower-cased>-`` removed, and with the mask
    generator (``maskgen.enabled``) ``-<maskgen.ratio>`` appended (``maskgen-0.8``).
    """
    name = config.get("name")
    net, env = config.get("net"), config.get("env")
    if not isinstance(name, str) or not name:
        raise ReportError(f"config has no experiment name (got {name!r})")
    if not isinstance(net, Mapping) or not isinstance(net.get("arch"), str):
        raise ReportError("config has no net.arch")
    if not isinstance(env, Mapping) or "suite" not in env:
        raise ReportError("config has no env.suite")
    arch = net["arch"]
    suite = env["suite"]
    if isinstance(suite, str):
        benchmark = suite if env.get("kind", "minigrid") == "gymnax" else suite.upper()
    elif isinstance(suite, list | tuple):
        benchmark = CUSTOM_BENCHMARK
    else:
        raise ReportError(f"env.suite must be a name or a task list, got {suite!r}")
    prefix = f"{benchmark.lower()}-"
    method = name[len(prefix) :] if name.lower().startswith(prefix) else name
    maskgen = config.get("maskgen")
    if isinstance(maskgen, Mapping) and maskgen.get("enabled"):  # one row per ratio
        method = f"{method or name}-{maskgen.get('ratio')}"
    return arch, benchmark, method or name


def is_run_dir(path: Path) -> bool:
    """A run folder holds config.yaml and metrics.csv (written after the first evaluation)."""
    return (path / CONFIG_YAML).is_file() and (path / METRICS_CSV).is_file()


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Run folders given, or found recursively (sorted) under each of `paths`, without repeats.

    A path that does not exist, is not a folder, or holds no run folder raises `ReportError`
    naming it. The search does not descend into run folders or hidden folders.
    """
    found: list[Path] = []
    seen: set[Path] = set()
    for arg in paths:
        path = Path(arg)
        if not path.exists():
            raise ReportError(f"{path}: no such folder")
        if not path.is_dir():
            raise ReportError(f"{path}: not a folder (give run folders or folders of runs)")
        runs = []
        for root, dirs, _files in os.walk(path):
            here = Path(root)
            if is_run_dir(here):
                runs.append(here)
                dirs.clear()
            else:
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if not runs:
            hint = (
                f" ({CONFIG_YAML} but no {METRICS_CSV}: no evaluation yet?)"
                if (path / CONFIG_YAML).is_file()
                else ""
            )
            raise ReportError(
                f"{path}: no run folder ({CONFIG_YAML} + {METRICS_CSV}) in it or below it{hint}"
            )
        for run in runs:
            if run.resolve() not in seen:
                seen.add(run.resolve())
                found.append(run)
    return found


def read_run(run_dir: str | Path) -> Run:
    """Labels, last step and completeness of one run folder."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / CONFIG_YAML
    try:
        config = yaml.safe_load(cfg_path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ReportError(f"{cfg_path}: cannot read the config: {err}") from err
    if not isinstance(config, Mapping):
        raise ReportError(f"{cfg_path}: not a config mapping")
    try:
        arch, benchmark, method = derive_labels(config)
    except ReportError as err:
        raise ReportError(f"{cfg_path}: {err}") from err
    try:
        last_step = _last_step(run_dir)
    except (OSError, ValueError) as err:  # no step column, no rows (NaN), unreadable
        raise ReportError(f"{run_dir / METRICS_CSV}: cannot read its steps: {err}") from err
    train = config.get("train")
    total = train.get("total_steps") if isinstance(train, Mapping) else None
    return Run(
        run_dir=run_dir,
        name=str(config["name"]),
        arch=arch,
        benchmark=benchmark,
        method=method,
        last_step=last_step,
        total_steps=int(total) if total is not None else None,
        has_diagnostics=(run_dir / DIAGNOSTICS_CSV).is_file(),
    )


def collect_runs(paths: Iterable[str | Path]) -> list[Run]:
    """The runs under `paths` in report order; two runs for one cell raise `ReportError`."""
    runs = [read_run(d) for d in find_run_dirs(paths)]
    by_key: dict[tuple[str, str, str], list[Run]] = defaultdict(list)
    for run in runs:
        by_key[run.key].append(run)
    clashes = {key: group for key, group in by_key.items() if len(group) > 1}
    if clashes:
        lines = [
            f"  arch {a}, benchmark {b}, method {m}: " + ", ".join(str(r.run_dir) for r in group)
            for (a, b, m), group in clashes.items()
        ]
        raise ReportError(
            "several runs for the same (arch, benchmark, method); give one run per cell:\n"
            + "\n".join(lines)
        )
    return sorted(runs, key=_run_order)


# --------------------------------------------------------------------------- statistics


def score_cells(
    runs: Sequence[Run], metric: str = DEFAULT_METRIC, *, reps: int = 2000, seed: int = 0
) -> list[Cell]:
    """Final-step IQM, CI and mean of `metric` over seeds x tasks for each run.

    Seeds without a value for every task at the final step (dropped after a NaN) are left out.
    """
    cells = []
    for run in runs:
        try:
            scores, tasks = score_matrix(run.run_dir, metric=metric, step=run.last_step)
        except (OSError, ValueError) as err:
            raise ReportError(f"{run.run_dir}: {err}") from err
        scores = scores[~np.isnan(scores).any(axis=1)]
        if not len(scores):
            raise ReportError(
                f"{run.run_dir}: no seed has {metric} for every task at step {run.last_step}"
            )
        iqm, lo, hi = iqm_ci(scores, reps=reps, seed=seed)
        cells.append(
            Cell(run, scores.shape[0], len(tasks), run.last_step, iqm, lo, hi, float(scores.mean()))
        )
    return cells


# --------------------------------------------------------------------------- Markdown


def render_markdown(
    cells: Sequence[Cell],
    metric: str = DEFAULT_METRIC,
    figures: Mapping[tuple[str, str], Mapping[str, str]] | None = None,
) -> str:
    """The table: a block per architecture, rows methods, columns benchmarks (see module doc).

    `figures` maps (arch, benchmark) to {figure kind: relative path}; given, each block ends
    with links to them (report.md). The best IQM of a column is bold when the column has at
    least two cells (all tied best ones).
    """
    if not cells:
        return ""
    benchmarks = _ordered({c.run.benchmark for c in cells}, BENCHMARK_ORDER)
    seed_counts = Counter(c.seeds for c in cells)
    usual_seeds = seed_counts.most_common(1)[0][0]
    lines = [f"## Final {metric}: IQM [{CONFIDENCE:.0%} CI]", ""]
    for arch in _ordered({c.run.arch for c in cells}, ARCH_ORDER):
        block = {(c.run.method, c.run.benchmark): c for c in cells if c.run.arch == arch}
        methods = _ordered({m for m, _ in block}, METHOD_ORDER)
        best = {}
        for bench in benchmarks:
            column = [c.iqm for (_, b), c in block.items() if b == bench]
            if len(column) >= 2:
                best[bench] = max(column)
        lines += [f"### {arch_title(arch)}", ""]
        lines.append("| method | " + " | ".join(benchmarks) + " |")
        lines.append("| --- |" + " :---: |" * len(benchmarks))
        for method in methods:
            row = []
            for bench in benchmarks:
                cell = block.get((method, bench))
                row.append(_cell_text(cell, bold=cell is not None and cell.iqm == best.get(bench)))
            lines.append(f"| {_escape(method)} | " + " | ".join(row) + " |")
        lines.append("")

        notes = []
        odd = [c for c in block.values() if c.seeds != usual_seeds]
        if odd:
            listed = ", ".join(f"{c.run.method}/{c.run.benchmark} ({c.seeds})" for c in odd)
            notes.append(f"Seeds per cell: {usual_seeds}, except {listed}.")
        incomplete = [c for c in block.values() if not c.run.complete]
        if incomplete:
            listed = "; ".join(
                f"{c.run.method}/{c.run.benchmark} at step {c.step} of {c.run.total_steps} "
                f"(`{c.run.run_dir}`)"
                for c in incomplete
            )
            notes.append(f"Incomplete runs ({INCOMPLETE}), scored at their last step: {listed}.")
        if figures:
            links = []
            for bench in benchmarks:
                kinds = figures.get((arch, bench), {})
                if kinds:
                    refs = ", ".join(f"[{kind}]({path})" for kind, path in kinds.items())
                    links.append(f"{bench}: {refs}")
            if links:
                notes.append("Figures: " + "; ".join(links) + ".")
        for note in notes:  # each its own paragraph
            lines += [note, ""]

    steps = sorted({c.step for c in cells})
    step_text = f"step {steps[0]}" if len(steps) == 1 else f"steps {steps[0]}–{steps[-1]}"
    seed_text = (
        f"{usual_seeds} seeds per cell"
        if len(seed_counts) == 1
        else f"{min(seed_counts)}–{max(seed_counts)} seeds per cell"
    )
    lines.append(
        f"`{metric}` at each run's last evaluation ({step_text}, {STEP_LABEL}); IQM over "
        f"seeds × tasks with its {CONFIDENCE:.0%} stratified-bootstrap CI; {seed_text}; "
        f"bold: best IQM of a column; {MISSING}: no run."
    )
    return "\n".join(lines) + "\n"


def arch_title(arch: str) -> str:
    """The heading of an architecture's block: MTPPO, MoE, MOORE, MLP (else upper-cased)."""
    return ARCH_NAMES.get(arch, arch.upper())


def _cell_text(cell: Cell | None, bold: bool) -> str:
    if cell is None:
        return MISSING
    text = f"{cell.iqm:.3f} [{cell.ci_lo:.3f}, {cell.ci_hi:.3f}]"
    if bold:
        text = f"**{text}**"
    # " *" after the closing "**": a lone "*" between spaces stays literal in Markdown
    return text if cell.run.complete else f"{text} {INCOMPLETE}"


def _escape(text: str) -> str:
    return text.replace("|", r"\|")


# --------------------------------------------------------------------------- figures


def plot_curves(
    runs: Sequence[Run],
    path: str | Path,
    metric: str = DEFAULT_METRIC,
    *,
    title: str = "",
    colors: Mapping[str, Any] | None = None,
) -> Path:
    """Learning curves, one line per run (method): per seed the mean over tasks of `metric`,
    then mean and 95% CI over seeds (`plots.mean_ci_over_seeds`)."""
    fig = Figure(figsize=(7.0, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for run in runs:
        df = pd.read_csv(run.run_dir / METRICS_CSV, dtype={"task": str})
        if metric not in df.columns:
            raise ReportError(f"{run.run_dir / METRICS_CSV} has no column {metric!r}")
        per_seed = df.groupby(["step", "seed"], as_index=False)[metric].mean()
        values, steps = _seed_step_matrix(per_seed, metric)
        _draw(ax, steps, values, _label(run), _color(colors, run.method))
    ax.set_xlabel(STEP_LABEL)
    ax.set_ylabel(f"{metric}, mean over tasks")
    ax.set_title(f"mean and {CONFIDENCE:.0%} CI over seeds")
    ax.legend(loc="best", fontsize="small")
    fig.suptitle(title)
    return _save(fig, Path(path))


def plot_intervals(
    cells: Sequence[Cell],
    path: str | Path,
    metric: str = DEFAULT_METRIC,
    *,
    title: str = "",
    colors: Mapping[str, Any] | None = None,
) -> Path:
    """Final-score IQM (tick) and its CI (bar) per method, first method on top (rliable style).

    Drawn with `matplotlib.figure.Figure` rather than rliable's `plot_interval_estimates`, which
    goes through pyplot's global figure state that this package keeps out of.
    """
    n = len(cells)
    fig = Figure(figsize=(6.0, 0.45 * n + 1.3), layout="constrained")
    ax = fig.add_subplot()
    for i, cell in enumerate(cells):
        y = n - 1 - i
        color = _color(colors, cell.run.method)
        ax.barh(y, cell.ci_hi - cell.ci_lo, left=cell.ci_lo, height=0.6, color=color, alpha=0.75)
        ax.vlines(cell.iqm, y - 0.3, y + 0.3, color="black", linewidth=1.5)
    ax.set_yticks(range(n), [_label(c.run) for c in reversed(cells)])
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_xlabel(f"IQM of final {metric} ({CONFIDENCE:.0%} CI)")
    ax.grid(True, axis="x", alpha=0.3)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    fig.suptitle(title)
    return _save(fig, Path(path))


def plot_plasticity(
    runs: Sequence[Run],
    path: str | Path,
    *,
    title: str = "",
    colors: Mapping[str, Any] | None = None,
) -> Path | None:
    """Panels of ``PLASTICITY_COLUMNS`` vs step (dormant fractions, erank, Fisher trace, and the
    dormant fraction among unpruned neurons where logged), rows of at most four, one line per
    run with ``diagnostics.csv`` (mean and CI over seeds). `None`, no file, when no run has one
    of these columns."""
    tables = []
    for run in runs:
        if not run.has_diagnostics:
            continue
        df = pd.read_csv(run.run_dir / DIAGNOSTICS_CSV)
        if {"step", "seed"} - set(df.columns):
            raise ReportError(f"{run.run_dir / DIAGNOSTICS_CSV} lacks the step or seed column")
        tables.append((run, df))
    columns = [c for c in PLASTICITY_COLUMNS if any(c in df.columns for _, df in tables)]
    if not columns:
        return None

    ncols = min(len(columns), 4)
    nrows = -(-len(columns) // ncols)
    fig = Figure(figsize=(3.8 * ncols, 3.3 * nrows + 0.6), layout="constrained")
    grid = fig.subplots(nrows, ncols, squeeze=False).reshape(-1)
    for ax in grid[len(columns) :]:
        ax.set_visible(False)
    axes = grid[: len(columns)]
    for ax, col in zip(axes, columns, strict=True):
        for run, df in tables:
            if col in df.columns:
                data = df[["step", "seed"]].assign(**{col: pd.to_numeric(df[col], errors="coerce")})
                values, steps = _seed_step_matrix(data, col)
                _draw(ax, steps, values, _label(run), _color(colors, run.method))
        ax.set_title(PLASTICITY_LABELS[col])
        ax.set_xlabel(STEP_LABEL)
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:  # a method may lack a column: collect every line once
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6))
    fig.suptitle(f"{title}: mean and {CONFIDENCE:.0%} CI over seeds" if title else "")
    return _save(fig, Path(path))


def _draw(ax: Axes, steps: np.ndarray, values: np.ndarray, label: str, color: Any) -> None:
    mean, lo, hi = mean_ci_over_seeds(values)
    ax.plot(steps, mean, color=color, label=label, marker="." if len(steps) < 30 else None)
    if np.isfinite(lo).any():
        ax.fill_between(steps, lo, hi, where=np.isfinite(lo), color=color, alpha=0.2, linewidth=0)
    ax.grid(True, alpha=0.3)


def _label(run: Run) -> str:
    return run.method if run.complete else run.method + INCOMPLETE


def _color(colors: Mapping[str, Any] | None, method: str) -> Any:
    return None if colors is None else colors.get(method)


def method_colors(methods: Sequence[str]) -> dict[str, Any]:
    """A fixed colour per method, the same in every figure: tab20's dark shades, then light."""
    cmap = mpl.colormaps["tab20"]
    slots = [*range(0, 20, 2), *range(1, 20, 2)]
    return {m: cmap(slots[i % 20]) for i, m in enumerate(methods)}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def final_plasticity(runs: Iterable[Run]) -> pd.DataFrame:
    """For each run with ``diagnostics.csv`` and each ``PLASTICITY_COLUMNS`` column it logged:
    the mean and 95% bootstrap CI over seeds at the run's last diagnostics step (the columns of
    ``plasticity.csv``, ``PLASTICITY_CSV_COLUMNS``), runs in report order."""
    rows = []
    for run in sorted(runs, key=_run_order):
        if not run.has_diagnostics:
            continue
        df = pd.read_csv(run.run_dir / DIAGNOSTICS_CSV)
        if df.empty or "step" not in df.columns:
            continue
        step = int(df["step"].max())
        last = df[df["step"] == step]
        for col in PLASTICITY_COLUMNS:
            if col not in last.columns:
                continue
            values = pd.to_numeric(last[col], errors="coerce").to_numpy(dtype=float)
            values = values[~np.isnan(values)]
            if not values.size:
                continue
            mean, lo, hi = (float(v[0]) for v in mean_ci_over_seeds(values[:, None]))
            rows.append(
                {
                    "arch": run.arch,
                    "benchmark": run.benchmark,
                    "method": run.method,
                    "seeds": int(values.size),
                    "step": step,
                    "metric": col,
                    "mean": mean,
                    "ci_lo": lo,
                    "ci_hi": hi,
                }
            )
    return pd.DataFrame(rows, columns=list(PLASTICITY_CSV_COLUMNS))


def render_plasticity(frame: pd.DataFrame) -> str:
    """The ``final_plasticity`` frame as Markdown: a table per (architecture, benchmark), rows
    methods, columns the logged statistics, cells mean [95% CI] over seeds; "" without rows."""
    if frame.empty:
        return ""
    lines = [f"## Plasticity at the last evaluation: mean [{CONFIDENCE:.0%} CI] over seeds", ""]
    for (arch, bench), group in frame.groupby(["arch", "benchmark"], sort=False):
        present = set(group["metric"])
        cols = [c for c in PLASTICITY_COLUMNS if c in present]
        lines += [f"### {arch_title(arch)} on {bench}", ""]
        lines.append("| method | step | " + " | ".join(PLASTICITY_LABELS[c] for c in cols) + " |")
        lines.append("| --- | ---: |" + " :---: |" * len(cols))
        for method, rows in group.groupby("method", sort=False):
            by_metric = rows.set_index("metric")
            cells = []
            for c in cols:
                if c not in by_metric.index:
                    cells.append(MISSING)
                    continue
                r = by_metric.loc[c]
                cells.append(f"{r['mean']:.3g} [{r['ci_lo']:.3g}, {r['ci_hi']:.3g}]")
            step = int(rows["step"].iloc[0])
            lines.append(f"| {_escape(str(method))} | {step} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append(
        f"Statistics of `{DIAGNOSTICS_CSV}` at each run's last diagnostics step, over its seeds "
        f"(percentile bootstrap); {MISSING}: not logged by that run (a run from before the "
        "column existed: `jaxsparse diagnose RUN_DIR` measures it on the final checkpoint)."
    )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the report


def write_report(
    paths: Iterable[str | Path],
    out: str | Path = DEFAULT_OUT,
    metric: str = DEFAULT_METRIC,
    *,
    plots: bool = True,
    reps: int = 2000,
    seed: int = 0,
) -> Report:
    """Collect the runs under `paths`, score them and write report.md, report.csv and (with
    `plots`) the figures into `out`. `reps`, `seed` go to `iqm_ci`. Bad input: `ReportError`."""
    runs = collect_runs(paths)
    cells = score_cells(runs, metric, reps=reps, seed=seed)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    figures: dict[tuple[str, str], dict[str, str]] = {}
    if plots:
        colors = method_colors(_ordered({r.method for r in runs}, METHOD_ORDER))
        groups: dict[tuple[str, str], list[Cell]] = defaultdict(list)
        for cell in cells:  # cells are in report order, so the groups' methods are too
            groups[cell.run.arch, cell.run.benchmark].append(cell)
        for (arch, bench), group in groups.items():
            stem = f"{_slug(arch)}_{_slug(bench)}"
            title = f"{arch_title(arch)} on {bench}"
            group_runs = [c.run for c in group]
            kinds = figures[arch, bench] = {}
            path = plot_curves(
                group_runs, out_dir / f"curves_{stem}.png", metric, title=title, colors=colors
            )
            kinds["curves"] = path.name
            path = plot_intervals(
                group, out_dir / f"intervals_{stem}.png", metric, title=title, colors=colors
            )
            kinds["intervals"] = path.name
            path = plot_plasticity(
                group_runs, out_dir / f"plasticity_{stem}.png", title=title, colors=colors
            )
            if path is not None:
                kinds["plasticity"] = path.name
            for run in group_runs:  # the mask generator's similarity matrices, per run
                if not run.has_diagnostics:
                    continue
                diag = pd.read_csv(run.run_dir / DIAGNOSTICS_CSV)
                path = plot_mask_similarity(
                    diag,
                    out_dir / f"mask_similarity_{stem}_{_slug(run.method)}.png",
                    title=f"{title}, {run.method}",
                    task_names=_task_names(run),
                )
                if path is not None:
                    kinds[f"mask similarity ({run.method})"] = path.name
            written += [out_dir / name for name in kinds.values()]

    plasticity = final_plasticity(runs)
    extra = render_plasticity(plasticity)
    extra = "\n" + extra if extra else ""
    markdown = render_markdown(cells, metric) + extra
    md_path = out_dir / REPORT_MD
    md_path.write_text("# Study report\n\n" + render_markdown(cells, metric, figures) + extra)
    csv_path = out_dir / REPORT_CSV
    report_frame(cells).to_csv(csv_path, index=False)
    files = [md_path, csv_path]
    if not plasticity.empty:
        files.append(out_dir / PLASTICITY_CSV)
        plasticity.to_csv(files[-1], index=False)
    return Report(cells, metric, markdown, out_dir, [*files, *written])


def _task_names(run: Run) -> list[str]:
    """The run's tasks in the order of ``metrics.csv`` (the task ids' order)."""
    metrics = pd.read_csv(run.run_dir / METRICS_CSV, usecols=["task"], dtype={"task": str})
    return list(pd.unique(metrics["task"]))


def report_frame(cells: Sequence[Cell]) -> pd.DataFrame:
    """One row per cell with the columns of report.csv (`CSV_COLUMNS`)."""
    rows = [
        {
            "arch": c.run.arch,
            "benchmark": c.run.benchmark,
            "method": c.run.method,
            "seeds": c.seeds,
            "step": c.step,
            "iqm": c.iqm,
            "ci_lo": c.ci_lo,
            "ci_hi": c.ci_hi,
            "mean": c.mean,
            "complete": c.run.complete,
            "run_dir": str(c.run.run_dir),
        }
        for c in cells
    ]
    return pd.DataFrame(rows, columns=list(CSV_COLUMNS))


def _ordered(values: Iterable[str], fixed: Sequence[str]) -> list[str]:
    """`values` in the order of `fixed`, then the others alphabetically."""
    return sorted(set(values), key=lambda v: _rank(v, fixed))


def _rank(value: str, fixed: Sequence[str]) -> tuple[int, int, str]:
    return (0, fixed.index(value), "") if value in fixed else (1, 0, value)


def _run_order(run: Run) -> tuple:
    return (
        _rank(run.arch, ARCH_ORDER),
        _rank(run.benchmark, BENCHMARK_ORDER),
        _rank(run.method, METHOD_ORDER),
    )
