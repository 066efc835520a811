"""MiniGrid multi-task networks (MTPPO, MoE, MOORE) against by-hand and NumPy loop references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse.nets import (
    EXPERTS,
    MOORE,
    MTPPO,
    MiniGridEncoder,
    MoE,
    flatten_intermediates,
    gram_schmidt,
    make_network,
)
from jaxsparse.plasticity import dormant_fraction, effective_rank
from jaxsparse.sparsity.masks import default_filter, leaf_paths

T, A, B = 3, 7, 6
TASKS = jnp.array([0, 1, 2, 1, 0, 2], jnp.int32)


def _obs(seed: int = 0, batch: int = B) -> jax.Array:
    """Symbolic-like MiniGrid observations (small integer codes), as floats."""
    return jax.random.randint(jax.random.key(seed), (batch, 7, 7, 3), 0, 11).astype(jnp.float32)


def _init(net, seed: int = 0):
    return net.init(jax.random.key(seed), _obs(), TASKS)


def _apply(net, params, obs=None, tasks=TASKS):
    obs = _obs() if obs is None else obs
    (logits, value), state = net.apply(params, obs, tasks, mutable=["intermediates"])
    return logits, value, flatten_intermediates(state)


def _count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


# --------------------------------------------------------------------------- numpy references


def _np_conv(x: np.ndarray, k: np.ndarray, b: np.ndarray) -> np.ndarray:
    """2x2 VALID cross-correlation, NHWC x HWIO, as a sum of four shifted matmuls."""
    h, w = x.shape[1] - 1, x.shape[2] - 1
    out = np.zeros((x.shape[0], h, w, k.shape[-1]), np.float64)
    for di in range(2):
        for dj in range(2):
            out += x[:, di : di + h, dj : dj + w, :] @ k[di, dj]
    return out + b


def _np_encoder(p, obs: np.ndarray, final_tanh: bool = True) -> np.ndarray:
    h = np.asarray(obs, np.float64)
    for i, act in enumerate((np.maximum, np.maximum, None)):
        h = _np_conv(h, np.asarray(p[f"Conv_{i}"]["kernel"]), np.asarray(p[f"Conv_{i}"]["bias"]))
        h = np.maximum(h, 0.0) if act is not None else (np.tanh(h) if final_tanh else h)
    return h.reshape(h.shape[0], -1)


def _np_head(p, feats: np.ndarray, tasks: np.ndarray) -> np.ndarray:
    """Plain loop over samples: each uses its own task's Dense kernels."""
    rows = []
    for f, t in zip(feats, tasks, strict=True):
        h = np.tanh(f @ np.asarray(p["Dense_0"]["kernel"][t]) + np.asarray(p["Dense_0"]["bias"][t]))
        rows.append(h @ np.asarray(p["Dense_1"]["kernel"][t]) + np.asarray(p["Dense_1"]["bias"][t]))
    return np.stack(rows)


# --------------------------------------------------------------------------- shapes and counts


@pytest.mark.parametrize("arch", ["mtppo", "moe", "moore"])
@pytest.mark.parametrize("shared", [True, False])
def test_output_shapes(arch, shared):
    net = make_network(arch, T, A, shared_encoder=shared)
    logits, value, _ = _apply(net, _init(net))
    assert logits.shape == (B, A) and value.shape == (B,)
    assert np.all(np.isfinite(logits)) and np.all(np.isfinite(value))


def test_mtppo_parameter_shapes_and_count():
    params = _init(make_network("mtppo", T, A))["params"]
    enc = params["encoder"]
    assert [enc[f"Conv_{i}"]["kernel"].shape for i in range(3)] == [
        (2, 2, 3, 16),
        (2, 2, 16, 32),
        (2, 2, 32, 64),
    ]
    for head, out in (("actor", A), ("critic", 1)):
        for t in range(T):
            assert params[head]["Dense_0"]["kernel"][t].shape == (1024, 128)
            assert params[head]["Dense_1"]["kernel"][t].shape == (128, out)
    convs = (2 * 2 * 3 * 16 + 16) + (2 * 2 * 16 * 32 + 32) + (2 * 2 * 32 * 64 + 64)
    heads = T * ((1024 * 128 + 128) + (128 * A + A)) + T * ((1024 * 128 + 128) + (128 * 1 + 1))
    assert convs + heads == 800_840  # the spec's numbers, by hand
    assert _count(params) == convs + heads
    # Every conv and head weight is a prunable ``kernel`` for the sparse core; biases are not.
    pruned = [
        p
        for p, x in zip(leaf_paths(params), jax.tree.leaves(params), strict=True)
        if default_filter(p, x)
    ]
    assert len(pruned) == 3 + 4 and all(p.endswith("/kernel") for p in pruned)


def test_moore_parameter_count_separate_encoders():
    k = EXPERTS["MT3"]
    params = _init(make_network("moore", T, A))["params"]  # default: separate actor/critic nets
    convs = (2 * 2 * 3 * 16 + 16) + (2 * 2 * 16 * 32 + 32) + (2 * 2 * 32 * 64 + 64)
    encoder = k * convs + T * k  # experts + task-weight kernel (no bias)
    heads = T * ((1024 * 128 + 128) + (128 * A + A)) + T * ((1024 * 128 + 128) + (128 + 1))
    assert _count(params) == 2 * encoder + heads
    assert params["encoder"]["actor"]["task_weights"]["kernel"].shape == (T, k)


# --------------------------------------------------------------------------- per-task heads


@pytest.mark.parametrize("shared", [True, False])
def test_mtppo_matches_per_sample_loop(shared):
    net = MTPPO(T, A, shared_encoder=shared)
    params = _init(net)
    logits, value, _ = _apply(net, params)
    p = params["params"]
    obs, tasks = np.asarray(_obs()), np.asarray(TASKS)
    enc_a = p["encoder"] if shared else p["encoder"]["actor"]
    enc_c = p["encoder"] if shared else p["encoder"]["critic"]
    ref_logits = _np_head(p["actor"], _np_encoder(enc_a, obs), tasks)
    ref_value = _np_head(p["critic"], _np_encoder(enc_c, obs), tasks)[:, 0]
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(value, ref_value, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("arch", ["mtppo", "moore"])
def test_perturbing_one_task_head_changes_only_that_task(arch):
    net = make_network(arch, T, A)
    params = _init(net)
    logits, value, _ = _apply(net, params)

    actor = jax.tree.map(lambda leaf: leaf.at[1].add(0.5), params["params"]["actor"])
    new = {"params": {**params["params"], "actor": actor}}
    logits2, value2, _ = _apply(net, new)
    own = np.asarray(TASKS) == 1
    np.testing.assert_array_equal(np.asarray(logits2)[~own], np.asarray(logits)[~own])
    assert np.all(np.abs(np.asarray(logits2)[own] - np.asarray(logits)[own]).max(axis=1) > 1e-3)
    np.testing.assert_array_equal(value2, value)  # critic untouched


def test_out_of_range_task_gives_nan():
    net = make_network("mtppo", T, A)
    logits, value, _ = _apply(net, _init(net), tasks=TASKS.at[0].set(T))
    assert np.all(np.isnan(logits[0])) and np.isnan(value[0])
    assert np.all(np.isfinite(logits[1:]))


# --------------------------------------------------------------------------- MoE / MOORE


def test_gram_schmidt_orthonormal_and_matches_qr():
    x = jax.random.normal(jax.random.key(1), (5, 4, 64))
    q = np.asarray(gram_schmidt(x))
    gram = np.einsum("bkd,bjd->bkj", q, q)
    np.testing.assert_allclose(gram, np.broadcast_to(np.eye(4), gram.shape), atol=1e-4)
    for b in range(x.shape[0]):
        ref, _ = np.linalg.qr(np.asarray(x[b], np.float64).T)  # [D, K], columns = GS basis
        signs = np.sign(np.sum(q[b] * ref.T, axis=1, keepdims=True))
        np.testing.assert_allclose(q[b], signs * ref.T, atol=1e-5)
    np.testing.assert_allclose(
        q[:, 0], x[:, 0] / jnp.linalg.norm(x[:, 0], axis=-1)[:, None], atol=1e-6
    )


def test_gram_schmidt_degenerate_expert_is_zero_and_differentiable():
    x = jax.random.normal(jax.random.key(2), (3, 3, 16))
    x = x.at[:, 1].set(2.0 * x[:, 0]).at[:, 2].set(0.0)  # expert 1 in span of 0, expert 2 zero
    q = gram_schmidt(x)
    assert np.all(np.isfinite(q))
    assert float(jnp.abs(q[:, 2]).max()) == 0.0
    assert float(jnp.abs(q[:, 1]).max()) < 1e-2  # float32 residual / sqrt(eps) stays small
    grads = jax.grad(lambda z: jnp.sum(gram_schmidt(z) ** 2))(x)
    assert np.all(np.isfinite(grads))


@pytest.mark.parametrize("cls", [MoE, MOORE])
def test_mixture_features_equal_manual_mixing(cls):
    k = 3
    net = cls(T, A, n_experts=k, shared_encoder=True)
    params = _init(net)
    _, _, inter = _apply(net, params)
    enc = params["params"]["encoder"]
    obs = _obs()
    experts = jnp.stack(
        [
            MiniGridEncoder(final_activation=False).apply({"params": enc[f"expert_{i}"]}, obs)
            for i in range(k)
        ],
        axis=1,
    )
    if cls is MOORE:
        experts = gram_schmidt(experts)
    w = enc["task_weights"]["kernel"][TASKS]  # Dense on one_hot(task), no bias = row lookup
    manual = np.tanh(sum(np.asarray(w[:, i : i + 1]) * np.asarray(experts[:, i]) for i in range(k)))
    np.testing.assert_allclose(inter["features"], manual, rtol=1e-5, atol=1e-5)


def test_moore_differs_from_moe_with_same_params():
    moe, moore = MoE(T, A, n_experts=2), MOORE(T, A, n_experts=2)
    params = _init(moe)
    assert not np.allclose(_apply(moe, params)[0], _apply(moore, params)[0])


# --------------------------------------------------------------------------- intermediates


def test_sown_intermediates_names_shapes_and_metrics():
    net = make_network("mtppo", T, A)
    _, _, inter = _apply(net, _init(net))
    expected = {
        "encoder/conv_0": (B, 6, 6, 16),
        "encoder/conv_1": (B, 5, 5, 32),
        "encoder/conv_2": (B, 4, 4, 64),
        "actor/hidden": (B, 128),
        "critic/hidden": (B, 128),
        "features": (B, 1024),
    }
    assert {name: x.shape for name, x in inter.items()} == expected
    np.testing.assert_array_equal(inter["features"], inter["encoder/conv_2"].reshape(B, -1))
    assert float(inter["encoder/conv_0"].min()) >= 0.0  # post-ReLU
    hidden = {n: h for n, h in inter.items() if n != "features"}
    stats = dormant_fraction(hidden, 0.0)
    assert set(stats.per_layer) == set(hidden)
    assert int(stats.total) == 16 + 32 + 64 + 128 + 128
    assert 1 <= int(effective_rank(inter["features"])) <= B


def test_mixture_intermediates_per_expert():
    net = make_network("moore", T, A, n_experts=2, shared_encoder=False)
    _, _, inter = _apply(net, _init(net))
    for side in ("actor", "critic"):
        for e in range(2):
            assert inter[f"encoder/{side}/expert_{e}/conv_2"].shape == (B, 4, 4, 64)
    assert inter["features"].shape == inter["critic_features"].shape == (B, 1024)


def test_layer_norm_variant():
    net = make_network("mtppo", T, A, layer_norm=True)
    params = _init(net)["params"]
    assert params["encoder"]["LayerNorm_0"]["scale"].shape == (16,)
    assert params["actor"]["ln_scale"].shape == (T, 128)
    logits, _, inter = _apply(net, {"params": params})
    assert np.all(np.isfinite(logits))
    # LayerNorm over channels then ReLU: about half of each position's channels are active.
    active = np.mean(np.asarray(inter["encoder/conv_0"]) > 0.0)
    assert 0.2 < active < 0.8


# --------------------------------------------------------------------------- seeds, errors


def test_jit_vmap_init_over_seeds():
    # One arch only: XLA:CPU takes ~20 s to compile this at its default optimisation level.
    net = make_network("mtppo", T, A)
    keys = jax.random.split(jax.random.key(0), 4)
    params = jax.jit(jax.vmap(lambda k: net.init(k, _obs(), TASKS)))(keys)
    for leaf in jax.tree.leaves(params["params"]):
        assert leaf.shape[0] == 4
    kernel = np.asarray(params["params"]["actor"]["Dense_0"]["kernel"])
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.allclose(kernel[i], kernel[j])
    logits, value = jax.vmap(lambda p: net.apply(p, _obs(), TASKS))(params)
    assert logits.shape == (4, B, A) and value.shape == (4, B)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"arch": "sac"}, "arch"),
        ({"n_tasks": 0}, "n_tasks"),
        ({"n_actions": 0}, "n_actions"),
        ({"n_actions": 2.5}, "n_actions"),
        ({"arch": "moe", "n_experts": 0}, "n_experts"),
        ({"arch": "moore", "n_tasks": 6}, "n_experts"),  # no default for MT6
        ({"arch": "mtppo", "n_experts": 2}, "n_experts"),
    ],
)
def test_make_network_errors_name_field(kwargs, field):
    args = {"arch": "mtppo", "n_tasks": T, "n_actions": A, **kwargs}
    with pytest.raises(ValueError, match=field):
        make_network(**args)


def test_make_network_arch_error_lists_allowed():
    with pytest.raises(ValueError, match=r"arch.*mtppo.*moe.*moore"):
        make_network("moe2", T, A)


def test_expert_defaults_by_suite():
    for suite, k in EXPERTS.items():
        net = make_network("moore", int(suite[2:]), A)
        assert isinstance(net, MOORE) and net.n_experts == k


def test_bad_inputs_name_field():
    net = make_network("mtppo", T, A)
    params = _init(net)
    with pytest.raises(ValueError, match="obs"):
        net.apply(params, jnp.zeros((B, 7, 7)), TASKS)
    with pytest.raises(ValueError, match="task_id"):
        net.apply(params, _obs(), TASKS[:3])
    with pytest.raises(ValueError, match="task_id"):
        net.apply(params, _obs(), TASKS.astype(jnp.float32))
