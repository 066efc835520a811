"""PCGrad and CAGrad against hand arithmetic, plain NumPy loops and SciPy solvers."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.optimize import minimize, minimize_scalar

from jaxsparse.plasticity import cagrad, pcgrad
from jaxsparse.plasticity.surgery import _cagrad_weights, _projection_orders

# --------------------------------------------------------------------------- helpers


def to_tree(g: np.ndarray) -> dict:
    """Task gradients ``[T, 7]`` as a pytree: ``a`` [T, 2, 3] (entries 0..5), ``b`` [T, 1]."""
    g = jnp.asarray(g, jnp.float32)
    return {"a": g[:, :6].reshape(-1, 2, 3), "b": g[:, 6:]}


def from_tree(tree: dict) -> np.ndarray:
    """A combined gradient ({"a": [2, 3], "b": [1]}) as one vector, inverse of ``to_tree``."""
    return np.concatenate([np.ravel(tree["a"]), np.ravel(tree["b"])]).astype(np.float64)


def np_pcgrad(g: np.ndarray, orders: list[list[int]], reduction: str = "mean") -> np.ndarray:
    """The PCGrad algorithm as a plain loop: task i projects on orders[i] in turn."""
    g = np.asarray(g, np.float64)
    projected = []
    for i, order in enumerate(orders):
        gi = g[i].copy()
        for j in order:
            dot, sq = gi @ g[j], g[j] @ g[j]
            if dot < 0 and sq > 0:
                gi = gi - dot / sq * g[j]
        projected.append(gi)
    projected = np.stack(projected)
    return projected.mean(0) if reduction == "mean" else projected.sum(0)


def fixed_orders(num_tasks: int) -> list[list[int]]:
    return [[j for j in range(num_tasks) if j != i] for i in range(num_tasks)]


def cagrad_objective(gram: np.ndarray, w: np.ndarray, c: float) -> float:
    num_tasks = len(w)
    g0_norm = np.sqrt(gram.mean() + 1e-8)
    return float(
        w @ gram @ np.full(num_tasks, 1 / num_tasks) + c * g0_norm * np.sqrt(w @ gram @ w + 1e-8)
    )


def np_cagrad_direction(g: np.ndarray, w: np.ndarray, c: float, rescale: int) -> np.ndarray:
    gram = g @ g.T
    g0_norm = np.sqrt(gram.mean() + 1e-8)
    gw = w @ g
    direction = g.mean(0) + c * g0_norm / (np.linalg.norm(gw) + 1e-8) * gw
    return direction / {0: 1.0, 1: 1.0 + c**2, 2: 1.0 + c}[rescale]


def scipy_weights(g: np.ndarray, c: float) -> np.ndarray:
    """The CAGrad weights by a direct solver: bounded scalar search for 2 tasks, else SLSQP."""
    gram = g @ g.T
    if len(g) == 2:
        res = minimize_scalar(
            lambda a: cagrad_objective(gram, np.array([a, 1 - a]), c),
            bounds=(0.0, 1.0),
            method="bounded",
            options={"xatol": 1e-12},
        )
        return np.array([res.x, 1 - res.x])
    num_tasks = len(g)
    res = minimize(
        lambda w: cagrad_objective(gram, w, c),
        np.full(num_tasks, 1 / num_tasks),
        method="SLSQP",
        bounds=[(0.0, 1.0)] * num_tasks,
        constraints={"type": "eq", "fun": lambda w: 1 - w.sum()},
        options={"ftol": 1e-14, "maxiter": 1000},
    )
    assert res.success
    return res.x


def rel_err(x: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(x - ref) / np.linalg.norm(ref))


# Three tasks in 7 dims: task 2 conflicts with 0 and 1, and the projection orders matter.
G3 = np.array(
    [
        [1.0, 0.5, -0.2, 0.3, 0.0, 0.8, -0.4],
        [0.2, 1.2, 0.4, -0.6, 0.5, 0.1, 0.3],
        [-0.9, -0.7, 0.6, 0.2, -0.3, -0.5, 0.2],
    ]
)


# --------------------------------------------------------------------------- PCGrad


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_pcgrad_two_conflicting_tasks_by_hand(reduction):
    # g1 = [1, 0], g2 = [-1, 1] (leaf "x" holds the first entry, "y" the second):
    # g1.g2 = -1 < 0, ||g1||^2 = 1, ||g2||^2 = 2.
    # g1' = g1 - (-1 / 2) g2 = [1, 0] + [-0.5, 0.5] = [0.5, 0.5]   (g1'.g2 = 0)
    # g2' = g2 - (-1 / 1) g1 = [-1, 1] + [1, 0]     = [0, 1]       (g2'.g1 = 0)
    # mean = [0.25, 0.75], sum = [0.5, 1.5]
    grads = {"x": jnp.array([[1.0], [-1.0]]), "y": jnp.array([[0.0], [1.0]])}
    expected = {"mean": [0.25, 0.75], "sum": [0.5, 1.5]}[reduction]
    tx = pcgrad(reduction=reduction, shuffle=False)
    out, _ = tx.update(grads, tx.init({"x": jnp.zeros(1), "y": jnp.zeros(1)}))
    np.testing.assert_allclose([out["x"][0], out["y"][0]], expected, rtol=1e-6)


def test_pcgrad_without_conflicts_is_the_exact_mean():
    rng = np.random.default_rng(0)
    g = np.abs(rng.normal(size=(4, 7)))  # all dot products positive
    grads = to_tree(g)
    for shuffle in (False, True):
        tx = pcgrad(shuffle=shuffle)
        out, _ = jax.jit(tx.update)(grads, tx.init(None))
        for name in grads:
            np.testing.assert_array_equal(out[name], jnp.mean(grads[name], axis=0))
    tx = pcgrad(reduction="sum")
    out, _ = tx.update(grads, tx.init(None))
    np.testing.assert_allclose(from_tree(out), g.sum(0), rtol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_pcgrad_three_tasks_fixed_order_matches_numpy_loop(reduction):
    tx = pcgrad(reduction=reduction, shuffle=False)
    out, _ = jax.jit(tx.update)(to_tree(G3), tx.init(None))
    expected = np_pcgrad(G3, fixed_orders(3), reduction)
    np.testing.assert_allclose(from_tree(out), expected, rtol=1e-5, atol=1e-6)
    # the surgery changed something: it is not the plain mean/sum
    plain = G3.mean(0) if reduction == "mean" else G3.sum(0)
    assert rel_err(from_tree(out), plain) > 1e-2


def test_pcgrad_random_five_tasks_matches_numpy_loop():
    rng = np.random.default_rng(1)
    g = rng.normal(size=(5, 7))
    tx = pcgrad(shuffle=False)
    out, _ = tx.update(to_tree(g), tx.init(None))
    np.testing.assert_allclose(from_tree(out), np_pcgrad(g, fixed_orders(5)), rtol=1e-5, atol=1e-6)


def test_pcgrad_two_tasks_do_not_depend_on_the_key():
    grads = {"x": jnp.array([[1.0], [-1.0]]), "y": jnp.array([[0.0], [1.0]])}
    update = jax.jit(pcgrad().update)
    for seed in range(4):
        state = pcgrad(seed=seed).init(None)
        for _ in range(3):
            out, state = update(grads, state)
            np.testing.assert_allclose([out["x"][0], out["y"][0]], [0.25, 0.75], rtol=1e-6)


def test_pcgrad_shuffled_three_tasks_use_random_orders():
    every = {
        orders: np_pcgrad(G3, [list(o) for o in orders])
        for orders in itertools.product(*[itertools.permutations(o) for o in fixed_orders(3)])
    }
    distinct = {tuple(np.round(v, 6)) for v in every.values()}
    assert len(distinct) > 1  # the orders matter for this example

    tx = pcgrad(seed=3)
    state = tx.init(None)
    update = jax.jit(tx.update)
    seen = set()
    for _ in range(12):
        key_used = jax.random.split(state.key)[1]
        out, new_state = update(to_tree(G3), state)
        result = from_tree(out)
        # one of the numpy-loop results over all orderings ...
        errs = {k: rel_err(result, v) for k, v in every.items()}
        assert min(errs.values()) < 1e-5
        # ... namely the one with the permutations the transform drew
        orders = np.asarray(_projection_orders(key_used, 3, True))
        np.testing.assert_allclose(result, np_pcgrad(G3, orders.tolist()), rtol=1e-5, atol=1e-6)
        assert sorted(orders[1].tolist()) == [0, 2]
        seen.add(tuple(np.round(result, 5)))
        assert not np.array_equal(new_state.key, state.key)
        state = new_state
    assert len(seen) > 1  # the orders change from update to update


# --------------------------------------------------------------------------- CAGrad

# Two tasks that conflict (g1.g2 < 0): the optimal weights are interior.
G2 = np.array(
    [
        [1.0, 0.3, -0.5, 0.2, 0.9, -0.1, 0.4],
        [-0.6, 0.8, 0.7, -0.3, -0.2, 0.5, 0.1],
    ]
)


@pytest.mark.parametrize("rescale", [0, 1, 2])
@pytest.mark.parametrize("c", [0.2, 0.5, 1.0])
def test_cagrad_two_tasks_matches_direct_solution(c, rescale):
    w = scipy_weights(G2, c)
    assert 1e-3 < w[0] < 1 - 1e-3
    expected = np_cagrad_direction(G2, w, c, rescale)
    tx = cagrad(c=c, rescale=rescale)
    out, _ = jax.jit(tx.update)(to_tree(G2), tx.init(None))
    assert rel_err(from_tree(out), expected) < 1e-4


@pytest.mark.parametrize("c", [0.3, 0.5, 1.0])
def test_cagrad_three_tasks_matches_slsqp(c):
    w = scipy_weights(G3, c)
    expected = np_cagrad_direction(G3, w, c, rescale=1)
    tx = cagrad(c=c)
    out, _ = jax.jit(tx.update)(to_tree(G3), tx.init(None))
    assert rel_err(from_tree(out), expected) < 1e-4


def test_cagrad_solver_objective_matches_slsqp():
    rng = np.random.default_rng(2)
    for num_tasks, c in [(3, 0.5), (5, 0.5), (5, 1.0), (8, 0.4)]:
        g = rng.normal(size=(num_tasks, 16)) + 0.5 * rng.normal(size=16)
        gram = g @ g.T
        c_g0 = c * np.sqrt(gram.mean() + 1e-8)
        w = np.asarray(_cagrad_weights(jnp.asarray(gram, jnp.float32), c_g0, 500), np.float64)
        assert np.all(w >= 0) and abs(w.sum() - 1) < 1e-5
        best = cagrad_objective(gram, scipy_weights(g, c), c)
        assert cagrad_objective(gram, w, c) - best <= 1e-5 * abs(best)


def test_cagrad_with_c_zero_is_the_exact_mean():
    grads = to_tree(G3)
    for rescale in (0, 1, 2):
        tx = cagrad(c=0.0, rescale=rescale)
        out, _ = jax.jit(tx.update)(grads, tx.init(None))
        for name in grads:
            np.testing.assert_array_equal(out[name], jnp.mean(grads[name], axis=0))


# --------------------------------------------------------------------------- jit, vmap, chain


def test_pcgrad_vmap_over_seeds_equals_per_seed():
    seeds = 3
    g = np.random.default_rng(3).normal(size=(seeds, 4, 7))
    grads = jax.vmap(to_tree)(jnp.asarray(g))
    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(seeds))
    states = jax.vmap(lambda k: pcgrad(k).init(None))(keys)
    update = pcgrad().update  # the update rule does not depend on the seed
    out, new_states = jax.jit(jax.vmap(update))(grads, states)
    for s in range(seeds):
        tx = pcgrad(seed=s)
        ref, ref_state = tx.update(to_tree(g[s]), tx.init(None))
        np.testing.assert_allclose(
            from_tree(jax.tree.map(lambda x, s=s: x[s], out)), from_tree(ref), rtol=1e-6
        )
        np.testing.assert_array_equal(new_states.key[s], ref_state.key)


def test_cagrad_vmap_over_seeds_equals_per_seed():
    seeds = 3
    g = np.random.default_rng(4).normal(size=(seeds, 4, 7))
    tx = cagrad(c=0.5)
    state = tx.init(None)
    out, _ = jax.jit(jax.vmap(tx.update, in_axes=(0, None)))(
        jax.vmap(to_tree)(jnp.asarray(g)), state
    )
    for s in range(seeds):
        ref, _ = tx.update(to_tree(g[s]), state)
        np.testing.assert_allclose(
            from_tree(jax.tree.map(lambda x, s=s: x[s], out)), from_tree(ref), rtol=1e-5, atol=1e-7
        )


@pytest.mark.parametrize("surgery", [pcgrad, cagrad])
def test_composes_in_an_optax_chain(surgery):
    params = {"dense": {"kernel": jnp.ones((3, 2)), "bias": jnp.zeros(2)}}
    task_grads = jax.tree.map(
        lambda p: jax.random.normal(jax.random.PRNGKey(0), (4, *p.shape)), params
    )
    tx = optax.chain(surgery(), optax.clip_by_global_norm(1.0), optax.adam(1e-3))
    state = tx.init(params)
    updates, state = jax.jit(tx.update)(task_grads, state, params)
    assert jax.tree.map(jnp.shape, updates) == jax.tree.map(jnp.shape, params)
    new_params = optax.apply_updates(params, updates)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(new_params))
    assert not np.allclose(new_params["dense"]["kernel"], params["dense"]["kernel"])


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: pcgrad(reduction="max"), "reduction"),
        (lambda: cagrad(c=-0.1), "c must"),
        (lambda: cagrad(c=float("nan")), "c must"),
        (lambda: cagrad(rescale=3), "rescale"),
        (lambda: cagrad(rescale=True), "rescale"),
        (lambda: cagrad(num_steps=0), "num_steps"),
    ],
)
def test_bad_arguments_raise(make, field):
    with pytest.raises(ValueError, match=field):
        make()


@pytest.mark.parametrize("surgery", [pcgrad, cagrad])
def test_leaves_without_a_common_task_axis_raise(surgery):
    tx = surgery()
    state = tx.init(None)
    with pytest.raises(ValueError, match="leading task axis"):
        tx.update({"a": jnp.ones((2, 3)), "b": jnp.ones((3, 3))}, state)
    with pytest.raises(ValueError, match="leading task axis"):
        jax.jit(tx.update)({"a": jnp.ones((2, 3)), "b": jnp.ones(())}, state)
    params = {"a": jnp.ones(3), "b": jnp.ones(4)}
    with pytest.raises(ValueError, match="params have shapes"):
        tx.update({"a": jnp.ones((2, 3)), "b": jnp.ones((2, 3))}, state, params)
