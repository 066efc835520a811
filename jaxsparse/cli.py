"""The ``jaxsparse`` command (also ``python -m jaxsparse``)."""

from __future__ import annotations

import argparse
import sys


def _train(args: argparse.Namespace) -> int:
    from jaxsparse.run.config import ConfigError, load_experiment

    overrides = list(args.overrides)
    if args.seeds is not None:
        overrides.append(f"seeds={args.seeds}")
    try:
        cfg = load_experiment(args.experiment, overrides)
    except ConfigError as err:
        print(f"jaxsparse train: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        from jaxsparse.run.config import dump_config

        print(dump_config(cfg), end="")
        return 0
    from jaxsparse.run.compile_cache import CacheStats, enable_compile_cache
    from jaxsparse.run.runner import DivergedError, Runner, maybe_initialize_distributed

    if args.compile_cache is not None and args.no_compile_cache:
        msg = "give --compile-cache or --no-compile-cache, not both"
        print(f"jaxsparse train: {msg}", file=sys.stderr)
        return 2
    maybe_initialize_distributed()
    stats = None
    if not args.no_compile_cache:  # before anything compiles: JAX checks the cache only once
        try:
            cache = enable_compile_cache(args.compile_cache)
        except ValueError as err:
            print(f"jaxsparse train: --compile-cache: {err}", file=sys.stderr)
            return 2
        stats = None if cache is None else CacheStats(cache)
    try:
        runner = Runner(cfg, run_dir=args.run_dir, resume=args.resume, max_chunks=args.max_chunks)
        if runner.complete and not args.resume:
            print(f"{runner.run_dir}: already complete (summary.json exists); nothing to do")
            return 0
        runner.run()
        if stats is not None:
            print(stats.describe())
    except ConfigError as err:
        print(f"jaxsparse train: {err}", file=sys.stderr)
        return 2
    except DivergedError as err:
        print(f"jaxsparse train: {err}", file=sys.stderr)
        return 4
    return 0


def _plot(args: argparse.Namespace) -> int:
    from jaxsparse.run.plots import plot_run

    for run_dir in args.run_dirs:
        for path in plot_run(run_dir):
            print(path)
    return 0


def _report(args: argparse.Namespace) -> int:
    from jaxsparse.run.report import ReportError, write_report

    try:
        report = write_report(
            args.run_dirs, out=args.out, metric=args.metric, plots=not args.no_plots
        )
    except ReportError as err:
        print(f"jaxsparse report: {err}", file=sys.stderr)
        return 2
    print(report.markdown)
    print("written:")
    for path in report.written:
        print(f"  {path}")
    return 0


def _diagnose(args: argparse.Namespace) -> int:
    from jaxsparse.run.config import ConfigError
    from jaxsparse.run.runner import diagnose_checkpoint

    if args.tau is not None and args.tau < 0:
        print(f"jaxsparse diagnose: --tau must be >= 0, got {args.tau}", file=sys.stderr)
        return 2
    try:
        df = diagnose_checkpoint(args.run_dir, tau=args.tau)
    except ConfigError as err:
        print(f"jaxsparse diagnose: {err}", file=sys.stderr)
        return 2
    if args.out:
        df.to_csv(args.out, index=False)
        print(f"written: {args.out}")
    summary = df.drop(columns=["step", "seed"]).agg(["mean", "min", "max"]).T
    print(f"step {int(df['step'].iloc[0])}, {len(df)} seed(s):")
    print(summary.to_string(float_format=lambda v: f"{v:.4g}"))
    return 0


def _sparsity_demo(args: argparse.Namespace) -> int:
    """Prune a small MLP with GMP for a few hundred steps and print the per-layer summary."""
    import jax
    import jax.numpy as jnp
    import optax

    from jaxsparse.sparsity import GMP, apply_masks, sparsify, sparsity_summary

    key = jax.random.PRNGKey(args.seed)
    sizes = [(8, 64), (64, 64), (64, 1)]
    params = {
        f"Dense_{i}": {
            "kernel": jax.random.normal(jax.random.fold_in(key, i), s) / jnp.sqrt(s[0]),
            "bias": jnp.zeros(s[1]),
        }
        for i, s in enumerate(sizes)
    }
    x = jax.random.normal(jax.random.fold_in(key, 99), (256, 8))
    y = jnp.sin(x.sum(axis=1, keepdims=True))

    def loss(p):
        h = x
        for i in range(len(sizes)):
            h = h @ p[f"Dense_{i}"]["kernel"] + p[f"Dense_{i}"]["bias"]
            h = jnp.tanh(h) if i < len(sizes) - 1 else h
        return jnp.mean((h - y) ** 2)

    steps = 400
    method = GMP(sparsity=args.sparsity, start=40, end=320, freq=20)
    tx = sparsify(optax.adam(3e-3), method, key=args.seed)
    state = tx.init(params)
    params = apply_masks(params, state.masks)

    @jax.jit
    def step(p, s):
        value, grads = jax.value_and_grad(loss)(p)
        updates, s = tx.update(grads, s, p)
        return optax.apply_updates(p, updates), s, value

    for t in range(steps):
        params, state, value = step(params, state)
        if t % 100 == 0 or t == steps - 1:
            print(f"step {t:4d}  loss {float(value):.4f}")
    print(sparsity_summary(params).table())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jaxsparse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser(
        "train",
        help="train one experiment (experiments/<name>.yaml or a path), e.g. mt3-gmp",
        description="Overrides are key=value with dotted keys, e.g. net.arch=moore ppo.lr=3e-4.",
    )
    train.add_argument("experiment", help="e.g. mt3-gmp, or a path to a .yaml file")
    train.add_argument("overrides", nargs="*", help="key=value overrides (dotted keys)")
    train.add_argument("--seeds", type=int, default=None, help="number of seeds (vmapped)")
    train.add_argument("--run-dir", default=None, help="default: <out_dir>/<name>")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    train.add_argument("--max-chunks", type=int, default=None, help="stop after N chunks")
    train.add_argument("--dry-run", action="store_true", help="print the resolved config only")
    train.add_argument(
        "--compile-cache",
        default=None,
        metavar="DIR",
        help="JAX's persistent compilation cache folder, so that a resumed run loads its "
        "compiled programs instead of compiling again (default: ~/.cache/jaxsparse/xla; "
        "JAX_COMPILATION_CACHE_DIR, when set, wins)",
    )
    train.add_argument(
        "--no-compile-cache", action="store_true", help="compile everything afresh, save nothing"
    )
    train.set_defaults(func=_train)
    plot = sub.add_parser("plot", help="(re)draw the learning-curve PNGs of run folders")
    plot.add_argument("run_dirs", nargs="+")
    plot.set_defaults(func=_plot)
    report = sub.add_parser(
        "report",
        help="the study table (IQM of the final score, 95%% CIs) and its figures",
        description="Run folders, or folders searched recursively for them (e.g. runs/): one "
        "table block per architecture, rows methods, columns benchmarks; writes report.md, "
        "report.csv and the figures into --out.",
    )
    report.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    report.add_argument("--metric", default="eval_score", help="metrics.csv column to score")
    report.add_argument("--out", default="report", help="output folder (default: report)")
    report.add_argument("--no-plots", action="store_true", help="write no figures")
    report.set_defaults(func=_report)
    diag = sub.add_parser(
        "diagnose",
        help="plasticity diagnostics of a run's newest checkpoint (e.g. with another --tau)",
    )
    diag.add_argument("run_dir", metavar="RUN_DIR")
    diag.add_argument("--tau", type=float, default=None, help="dormant threshold (default: run's)")
    diag.add_argument("--out", default=None, help="also write the per-seed rows to this CSV")
    diag.set_defaults(func=_diagnose)
    demo = sub.add_parser("sparsity-demo", help="GMP on a small regression MLP, with a summary")
    demo.add_argument("--sparsity", type=float, default=0.9)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_sparsity_demo)
    args, extra = parser.parse_known_args(argv)
    if extra:  # key=value overrides may follow options (argparse stops a nargs="*" at an option)
        bad = [e for e in extra if e.startswith("-") or "=" not in e]
        if bad or args.command != "train":
            parser.error(f"unrecognized arguments: {' '.join(bad or extra)}")
        args.overrides = [*args.overrides, *extra]
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
