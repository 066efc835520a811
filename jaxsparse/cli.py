"""The ``jaxsparse`` command (also ``python -m jaxsparse``)."""

from __future__ import annotations

import argparse
import sys

# What `train` can run today, by benchmark x method; filled in as the trainers land.
TRAINERS: dict[str, str] = {}

PLANNED = {
    "mt3-gmp": "MTPPO + GMP on MiniGrid MT3: the MiniGrid suites (envs.minigrid) and the networks\n"
    "  (jaxsparse.nets) exist; the PPO trainer and the runner do not yet (issue 4)",
    "mt10-gmp": "multi-head SAC + GMP on Meta-World MT10 (SAC: issue 7; MJX port: issue 6)",
}


def _train(args: argparse.Namespace) -> int:
    if args.experiment in TRAINERS:  # pragma: no cover - no trainer exists yet
        raise NotImplementedError
    known = sorted(set(PLANNED) | set(TRAINERS))
    if args.experiment not in known:
        print(
            f"jaxsparse train: unknown experiment {args.experiment!r}; known: {', '.join(known)}",
            file=sys.stderr,
        )
        return 2
    print(
        f"jaxsparse train {args.experiment}: not built yet.\n"
        f"  {PLANNED[args.experiment]}.\n"
        "  Built today: the sparse-training core (jaxsparse.sparsity: masks, uniform/ERK,\n"
        "  GMP/SET/RigL/static/grow, module-specific plans, the optax wrapper), the plasticity\n"
        "  metrics (jaxsparse.plasticity), the MiniGrid MT3/MT5/MT7 suites (envs.minigrid) and\n"
        "  the MTPPO / MoE / MOORE networks (jaxsparse.nets). See README.md.",
        file=sys.stderr,
    )
    return 3


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
    train = sub.add_parser("train", help="train one experiment (benchmark-method)")
    train.add_argument("experiment", help="e.g. mt3-gmp")
    train.set_defaults(func=_train)
    demo = sub.add_parser("sparsity-demo", help="GMP on a small regression MLP, with a summary")
    demo.add_argument("--sparsity", type=float, default=0.9)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_sparsity_demo)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
