"""Cost of the sparse optax wrapper: optimiser updates per second, dense Adam vs sparsify(Adam).

The parameters are those of MTPPO on MT3 (the MOORE MiniGrid encoder, per-task actor and critic
heads, ~0.8M weights). Each figure is the median of several timed runs of a jitted `lax.scan` over
`--updates` updates, after a warm-up run; compile time is reported apart. Mask updates happen
every `--freq` updates, as they would in training. Writes a JSON file per run to
benchmarks/results/ and regenerates the section of benchmarks/RESULTS.md.

    python benchmarks/sparse_update.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

from jaxsparse.sparsity import GMP, SET, Dense, RigL, StaticSparse, apply_masks, sparsify

HERE = Path(__file__).resolve().parent
READING = """\
Reading: masks change every 20 optimiser updates here, far more often than in the paper's
protocols, so this stresses the mask-update cost (about 25 ms per GMP update of these 0.8M
weights on the 2-core CPU). Between mask updates the wrapper costs only the masking (the
`static` rows; single-seed runs last ~30 ms and are noisy).

Three versions on this CPU. (1) First version: top-k masks by a sort (+ scatter), optimiser
moments reset at every update, and under vmap the batched clock turned the mask update's
`lax.cond` into a `select` that ran it at every update: gmp 9.4, set 4.9 updates/s (1 seed,
batched clock), gmp 159, set 94 with `mask_step`. (2) Top-k by 32 counting passes, moments reset
only at mask-update steps: the first table below (batched clock still a `select`: 0.02-0.05 of
dense; `mask_step` 0.18-0.30). (3) `cond_any` (custom_vmap) keeps the mask update one real branch
under vmap whatever the clock: the second table, where both clocks should cost the same."""
N_TASKS, N_ACTIONS = 3, 7


def mtppo_params(key: jax.Array) -> dict:
    """Parameter shapes of MTPPO on MT3: shared conv encoder, per-task 1024-128-out heads."""
    shapes = {
        "encoder/Conv_0": (2, 2, 3, 16),
        "encoder/Conv_1": (2, 2, 16, 32),
        "encoder/Conv_2": (2, 2, 32, 64),
    }
    for t in range(N_TASKS):
        shapes[f"actor_{t}/Dense_0"] = (1024, 128)
        shapes[f"actor_{t}/Dense_1"] = (128, N_ACTIONS)
        shapes[f"critic_{t}/Dense_0"] = (1024, 128)
        shapes[f"critic_{t}/Dense_1"] = (128, 1)
    params: dict = {}
    for i, (path, shape) in enumerate(shapes.items()):
        module, layer = path.split("/")
        k = jax.random.fold_in(key, i)
        params.setdefault(module, {})[layer] = {
            "kernel": jax.random.normal(k, shape) * 0.05,
            "bias": jnp.zeros(shape[-1]),
        }
    return params


def p_scale(i: jax.Array) -> jax.Array:
    return jnp.sin(0.37 * i.astype(jnp.float32))


def methods(freq: int) -> dict:
    return {
        "dense (plain adam)": None,
        "dense plan": Dense(),
        "static 0.95": StaticSparse(sparsity=0.95),
        "gmp 0.95": GMP(sparsity=0.95, start=0, end=100 * freq, freq=freq),
        "set 0.95": SET(sparsity=0.95, freq=freq, drop_fraction=0.3),
        "rigl 0.95": RigL(sparsity=0.95, freq=freq, drop_fraction=0.3),
    }


def build(method, n_seeds: int, n_updates: int, unbatched_step: bool):
    """(jitted init over seeds, jitted run of ``n_updates`` updates over seeds, keys)."""
    inner = optax.adam(1e-3)

    def make_tx(key):
        return inner if method is None else sparsify(inner, method, key=key)

    def init(key):
        params = mtppo_params(key)
        state = make_tx(key).init(params)
        if method is not None:
            params = apply_masks(params, state.masks)
        grads = jax.tree.map(lambda x: jax.random.normal(key, x.shape) * 1e-2, params)
        return params, state, grads

    def run(key, params, state, base_grads, start):
        tx = make_tx(key)

        def step(carry, i):
            p, s = carry
            # cheap per-step gradients (drawing fresh normals would dominate the timing)
            grads = jax.tree.map(lambda g: g * jnp.cos(0.1 * i) + 1e-3 * p_scale(i), base_grads)
            extra = {"mask_step": start + i} if unbatched_step else {}
            updates, s = tx.update(grads, s, p, **extra)
            return (optax.apply_updates(p, updates), s), None

        (p, s), _ = jax.lax.scan(step, (params, state), jnp.arange(n_updates))
        return p, s

    keys = jax.random.split(jax.random.PRNGKey(0), n_seeds)
    return jax.jit(jax.vmap(init)), jax.jit(jax.vmap(run, in_axes=(0, 0, 0, 0, None))), keys


def measure(method, n_seeds: int, n_updates: int, reps: int, unbatched_step: bool) -> dict:
    init, run, keys = build(method, n_seeds, n_updates, unbatched_step)
    params, state, grads = jax.block_until_ready(init(keys))
    t0 = time.perf_counter()
    compiled = run.lower(keys, params, state, grads, 0).compile()
    compile_s = time.perf_counter() - t0
    params, state = jax.block_until_ready(compiled(keys, params, state, grads, 0))  # warm-up
    times = []
    for r in range(reps):
        t0 = time.perf_counter()
        params, state = jax.block_until_ready(
            compiled(keys, params, state, grads, (r + 1) * n_updates)
        )
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    return {
        "compile_s": round(compile_s, 2),
        "median_s": median,
        "updates_per_s_per_seed": n_updates / median,
        "updates_per_s_total": n_updates * n_seeds / median,
    }


def device_name() -> str:
    d = jax.devices()[0]
    if d.platform == "cpu":
        return f"cpu ({platform.processor() or platform.machine()}, {jax.device_count()} device)"
    return f"{d.platform} {getattr(d, 'device_kind', '')}"


def render(results_dir: Path) -> str:
    runs = []
    for path in sorted(results_dir.glob("sparse_update-*.json")):
        run = json.loads(path.read_text())
        run.setdefault("stamp", path.stem.rsplit("-", 1)[-1])
        runs.append(run)
    lines = [
        "## Sparse optax wrapper: optimiser updates per second (MTPPO MT3 parameters, Adam)",
        "",
        "`python benchmarks/sparse_update.py`. Median of timed runs after warm-up; compile apart;",
        "initialisation (mask sampling) not timed. Ratio = updates/s of the method / updates/s of",
        "plain Adam at the same seed count. `(mask_step)`: the schedule clock passed unbatched",
        "(`tx.update(..., mask_step=t)`), so under vmap the mask update stays a real `lax.cond`.",
        "",
        READING,
        "",
    ]
    for run in runs:
        lines += [
            f"### {run['device']} - {run['stamp']} - jax {run['jax']} - "
            f"{run['n_updates']} updates per run, masks updated every {run['freq']}",
            "",
            "| method | seeds | updates/s per seed | updates/s total | ratio to dense "
            "| compile s |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in run["rows"]:
            lines.append(
                f"| {row['method']} | {row['seeds']} | {row['updates_per_s_per_seed']:.0f} | "
                f"{row['updates_per_s_total']:.0f} | {row['ratio_to_dense']:.2f} | "
                f"{row['compile_s']:.1f} |"
            )
        lines.append("")
    return "\n".join(lines)


def update_results_md(section: str) -> None:
    path = HERE / "RESULTS.md"
    begin, end = "<!-- sparse_update:begin -->", "<!-- sparse_update:end -->"
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    block = f"{begin}\n{section}\n{end}"
    if begin in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer seeds and repetitions")
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--freq", type=int, default=20)
    args = parser.parse_args()
    seed_counts = [1, 4] if args.quick else [1, 4, 16]
    reps = 3 if args.quick else 5
    rows = []
    for n_seeds in seed_counts:
        dense_rate = None
        for name, method in methods(args.freq).items():
            clocks = [False, True] if isinstance(method, GMP | SET) else [False]
            for unbatched in clocks:
                r = measure(method, n_seeds, args.updates, reps, unbatched)
                dense_rate = dense_rate or r["updates_per_s_total"]
                label = name + (" (mask_step)" if unbatched else "")
                r.update(
                    method=label,
                    seeds=n_seeds,
                    ratio_to_dense=r["updates_per_s_total"] / dense_rate,
                )
                rows.append(r)
                print(
                    f"{label:32s} seeds={n_seeds:3d}  "
                    f"{r['updates_per_s_per_seed']:9.1f} upd/s/seed  "
                    f"ratio {r['ratio_to_dense']:.2f}  compile {r['compile_s']:.1f}s",
                    flush=True,
                )
    run = {
        "benchmark": "sparse_update",
        "device": device_name(),
        "date": time.strftime("%Y-%m-%d"),
        "jax": jax.__version__,
        "optax": optax.__version__,
        "n_updates": args.updates,
        "freq": args.freq,
        "rows": rows,
    }
    results_dir = HERE / "results"
    results_dir.mkdir(exist_ok=True)
    tag = run["device"].split()[0]
    out = results_dir / f"sparse_update-{tag}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(run, indent=1))
    update_results_md(render(results_dir))
    print(f"wrote {out} and benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
