"""ReDo and Reset on the MiniGrid networks: exactly the dormant neurons are recycled (never an
output layer), everything else is bit-identical, Adam moments of touched entries are zeroed,
pruned weights stay pruned; Reset touches only the output layers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxsparse.nets import flatten_intermediates, make_network
from jaxsparse.plasticity.interventions import (
    is_output_layer,
    recycle_dormant,
    reset_layers,
    zero_adam_moments,
)
from jaxsparse.plasticity.neurons import (
    all_scores,
    dormant_summary,
    minigrid_neuron_layers,
)
from jaxsparse.sparsity.masks import leaf_paths

T, A, PER_TASK = 3, 7, 8
TAU = 0.001
TIGHT = 1e-6


def _obs(key=0):
    image = jax.random.randint(jax.random.PRNGKey(key), (T * PER_TASK, 7, 7, 3), 0, 11).astype(
        jnp.float32
    )
    task = jnp.repeat(jnp.arange(T), PER_TASK)  # task-major blocks
    return image, task


def _net_and_params(arch="mtppo", **kw):
    net = make_network(arch, T, A, **kw)
    image, task = _obs()
    params = net.init(jax.random.PRNGKey(1), image, task, task_major=True)
    fresh = net.init(jax.random.PRNGKey(2), image, task, task_major=True)
    return net, params, fresh


def _flat(tree):
    return dict(zip(leaf_paths(tree), [np.asarray(x) for x in jax.tree.leaves(tree)], strict=True))


def _scores(net, params):
    image, task = _obs()
    _, inter = net.apply(params, image, task, task_major=True, mutable=["intermediates"])
    layers = minigrid_neuron_layers(params)
    return layers, all_scores(flatten_intermediates(inter), layers, T)


def _kill(params, path_kernel, path_bias, index):
    """Zero the incoming weights and bias of one neuron so that its activation is exactly 0."""
    flat = _flat(params)
    k, b = flat[path_kernel].copy(), flat[path_bias].copy()
    k[index[0]] = 0.0
    b[index[1]] = 0.0
    flat[path_kernel], flat[path_bias] = k, b
    return jax.tree.unflatten(jax.tree.structure(params), [flat[p] for p in leaf_paths(params)])


@pytest.mark.parametrize(
    "arch,kw",
    [
        ("mtppo", {}),
        ("mtppo", {"shared_encoder": False}),
        ("mtppo", {"layer_norm": True}),
        ("moe", {"layer_norm": True}),
        ("moore", {"layer_norm": True}),
        ("moore", {"shared_encoder": True}),
    ],
)
def test_neuron_graph_covers_every_architecture(arch, kw):
    net, params, _ = _net_and_params(arch, **kw)
    layers, scores = _scores(net, params)
    shapes = {p: x.shape for p, x in _flat(params).items()}
    names = [layer.name for layer in layers]
    assert "actor/hidden" in names and "critic/hidden" in names
    for layer in layers:
        assert scores[layer.name].shape == (
            (T, 128) if layer.per_task else scores[layer.name].shape
        )
        for slot in layer.incoming + layer.outgoing:
            assert slot.path in shapes, slot.path
            slot.entries(scores[layer.name] <= TAU, shapes[slot.path])  # broadcasts
        assert not any(is_output_layer(s.path) for s in layer.incoming)
    n_enc = 2 if kw.get("shared_encoder", arch == "mtppo") is False else 1
    n_experts = {"mtppo": 1, "moe": 2, "moore": 2}[arch]
    convs_per_encoder = 3 if arch == "mtppo" else 2 * n_experts  # expert conv_2 is linear
    assert len(layers) == n_enc * convs_per_encoder + 2
    summary = dormant_summary(scores, layers, TAU)
    assert 0.0 <= float(summary["dormant_actor"]) <= 1.0


def test_dormant_live_leaves_out_the_neurons_whose_incoming_weights_are_all_pruned():
    net, params, _ = _net_and_params("mtppo")
    flat = _flat(params)
    # Prune every incoming weight of conv_0 channels 5 and 6 and of task 1's actor hidden unit
    # 17 (a few other weights too); the pruned weights are zero, the biases start at zero.
    masks = {p: np.ones(x.shape, bool) for p, x in flat.items() if p.endswith("kernel")}
    masks["encoder/Conv_0/kernel"][..., [5, 6]] = False
    masks["encoder/Conv_0/kernel"][0, 0, 0, 7] = False
    masks["actor/Dense_0/kernel"][1, :, 17] = False
    masks["critic/Dense_0/kernel"][2, :10, 3] = False
    paths = leaf_paths(params)
    mask_tree = jax.tree.unflatten(jax.tree.structure(params), [masks.get(p) for p in paths])
    params = jax.tree.unflatten(
        jax.tree.structure(params),
        [np.where(masks[p], flat[p], 0.0) if p in masks else flat[p] for p in paths],
    )
    layers, scores = _scores(net, params)
    dormant = {k: np.asarray(v) <= TAU for k, v in scores.items()}
    # Cut neurons compute exactly zero: dormant by construction.
    assert dormant["encoder/conv_0"][[5, 6]].all() and dormant["actor/hidden"][1, 17]
    size = {k: v.size for k, v in dormant.items()}
    n = {
        "actor": sum(size[k] for k in size if k != "critic/hidden"),
        "critic": sum(size[k] for k in size if k != "actor/hidden"),
    }
    d = {
        "actor": sum(int(v.sum()) for k, v in dormant.items() if k != "critic/hidden"),
        "critic": sum(int(v.sum()) for k, v in dormant.items() if k != "actor/hidden"),
    }
    cut = {"actor": 3, "critic": 2}  # the two channels feed both heads; unit 17 is the actor's

    summary = {k: float(v) for k, v in dormant_summary(scores, layers, TAU, mask_tree).items()}
    for r in ("actor", "critic"):
        assert summary[f"dormant_{r}"] == pytest.approx(d[r] / n[r], abs=1e-7)
        assert summary[f"cut_{r}"] == pytest.approx(cut[r] / n[r], abs=1e-7)
        assert summary[f"dormant_live_{r}"] == pytest.approx(
            (d[r] - cut[r]) / (n[r] - cut[r]), abs=1e-7
        )
    # A dense network (no masks, or a tree of None): nothing is cut, both fractions agree.
    dense = dormant_summary(scores, layers, TAU, jax.tree.map(lambda _: None, params))
    assert float(dense["cut_actor"]) == 0.0
    # Jitted and vmapped over seeds as the runner calls it (there XLA divides through a
    # reciprocal: 1 - 496 / 496 came out as 3e-8), nothing cut is exactly 0.
    stacked = jax.tree.map(lambda x: jnp.stack([x, x]), scores)
    all_live = jax.tree.map(lambda m: np.ones_like(m), mask_tree)
    jitted = jax.jit(jax.vmap(lambda s, m: dormant_summary(s, layers, TAU, m)))
    out = jitted(stacked, jax.tree.map(lambda m: np.stack([m, m]), all_live))
    assert np.all(np.asarray(out["cut_actor"]) == 0.0), out["cut_actor"]
    assert np.all(np.asarray(out["cut_critic"]) == 0.0), out["cut_critic"]
    out = jitted(stacked, jax.tree.map(lambda m: np.stack([m, m]), mask_tree))
    for r in ("actor", "critic"):
        np.testing.assert_allclose(np.asarray(out[f"cut_{r}"]), cut[r] / n[r], rtol=1e-6)
    assert float(dense["dormant_live_actor"]) == pytest.approx(float(dense["dormant_actor"]))
    assert "cut_actor" not in dormant_summary(scores, layers, TAU)


def test_redo_recycles_exactly_the_dormant_neurons_and_nothing_else():
    net, params, fresh = _net_and_params("mtppo")
    # A tight threshold: only neurons that are exactly silent (a killed neuron scores 0).
    # At init some ReLU channels of conv_1 are already dead (score 0): recycled too.
    _, scores0 = _scores(net, params)
    natural = np.flatnonzero(np.asarray(scores0["encoder/conv_1"]) <= TIGHT).tolist()
    assert all(
        not np.any(np.asarray(v) <= TIGHT) for k, v in scores0.items() if k != "encoder/conv_1"
    )
    # Kill conv_0 channel 5, conv_2 channel 9 and task 1's actor hidden unit 17.
    params = _kill(params, "encoder/Conv_0/kernel", "encoder/Conv_0/bias", ((..., 5), 5))
    params = _kill(params, "encoder/Conv_2/kernel", "encoder/Conv_2/bias", ((..., 9), 9))
    params = _kill(params, "actor/Dense_0/kernel", "actor/Dense_0/bias", ((1, ..., 17), (1, 17)))
    layers, scores = _scores(net, params)
    dormant = {k: np.flatnonzero(np.asarray(v).reshape(-1) <= TIGHT) for k, v in scores.items()}
    assert dormant["encoder/conv_0"].tolist() == [5]
    assert dormant["encoder/conv_2"].tolist() == [9]
    assert dormant["actor/hidden"].tolist() == [1 * 128 + 17]
    assert dormant["encoder/conv_1"].tolist() == natural
    assert all(len(v) == 0 for k, v in dormant.items() if k in ("critic/hidden",))

    new, touched, count = recycle_dormant(params, fresh, scores, layers, TIGHT)
    assert int(count) == 3 + len(natural)
    old, new, fr, tc = _flat(params), _flat(new), _flat(fresh), _flat(touched)

    expect = {p: np.zeros(x.shape, bool) for p, x in old.items()}
    expect["encoder/Conv_0/kernel"][..., 5] = True
    expect["encoder/Conv_0/bias"][5] = True
    expect["encoder/Conv_1/kernel"][:, :, 5, :] = True
    for c in natural:
        expect["encoder/Conv_1/kernel"][..., c] = True
        expect["encoder/Conv_1/bias"][c] = True
        expect["encoder/Conv_2/kernel"][:, :, c, :] = True
    expect["encoder/Conv_2/kernel"][..., 9] = True
    expect["encoder/Conv_2/bias"][9] = True
    rows = np.arange(1024) % 64 == 9  # NHWC flatten: feature row = position * 64 + channel
    expect["actor/Dense_0/kernel"][:, rows, :] = True
    expect["critic/Dense_0/kernel"][:, rows, :] = True
    expect["actor/Dense_0/kernel"][1, :, 17] = True
    expect["actor/Dense_0/bias"][1, 17] = True
    expect["actor/Dense_1/kernel"][1, 17, :] = True
    for p in old:
        np.testing.assert_array_equal(tc[p], expect[p], err_msg=p)
        keep = ~expect[p]
        np.testing.assert_array_equal(new[p][keep], old[p][keep], err_msg=p)  # bit-identical
    # Incoming weights from the fresh init, biases zero, outgoing weights zero.
    np.testing.assert_array_equal(
        new["encoder/Conv_0/kernel"][..., 5], fr["encoder/Conv_0/kernel"][..., 5]
    )
    # (rows read from the recycled conv_2 channel are outgoing weights of that neuron: zero)
    np.testing.assert_array_equal(
        new["actor/Dense_0/kernel"][1, ~rows, 17], fr["actor/Dense_0/kernel"][1, ~rows, 17]
    )
    assert new["encoder/Conv_0/bias"][5] == 0.0 and new["actor/Dense_0/bias"][1, 17] == 0.0
    assert np.all(new["encoder/Conv_1/kernel"][:, :, 5, :] == 0.0)
    assert np.all(new["actor/Dense_0/kernel"][:, rows, :] == 0.0)
    assert np.all(new["critic/Dense_0/kernel"][:, rows, :] == 0.0)
    assert np.all(new["actor/Dense_1/kernel"][1, 17, :] == 0.0)
    # The output layers are never recycled as neurons: their biases and other rows are intact.
    np.testing.assert_array_equal(new["actor/Dense_1/bias"], old["actor/Dense_1/bias"])
    # The recycled neurons' outgoing weights are zero, so the outputs are unchanged.
    image, task = _obs()
    out_old = net.apply(params, image, task, task_major=True)
    out_new = net.apply(
        jax.tree.unflatten(jax.tree.structure(params), list(new.values())),
        image,
        task,
        task_major=True,
    )
    for a, b in zip(out_old, out_new, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


def test_redo_zeroes_adam_moments_of_touched_entries_only():
    net, params, fresh = _net_and_params("mtppo")
    params = _kill(params, "encoder/Conv_1/kernel", "encoder/Conv_1/bias", ((..., 3), 3))
    layers, scores = _scores(net, params)
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-3, weight_decay=1e-6))
    opt_state = tx.init(params)
    grads = jax.tree.map(lambda x: jnp.ones_like(x), params)
    _, opt_state = tx.update(grads, opt_state, params)
    _, touched, count = recycle_dormant(params, fresh, scores, layers, TAU)
    assert int(count) >= 1  # the killed channel (and any dead at init)
    new_state = zero_adam_moments(opt_state, touched)
    adam_old, adam_new = opt_state[1][0], new_state[1][0]
    for field in ("mu", "nu"):
        o, n, t = _flat(getattr(adam_old, field)), _flat(getattr(adam_new, field)), _flat(touched)
        for p in o:
            assert np.all(n[p][t[p]] == 0.0), p
            np.testing.assert_array_equal(n[p][~t[p]], o[p][~t[p]], err_msg=p)
        assert t["encoder/Conv_2/kernel"][:, :, 3, :].all()
        assert np.all(o["encoder/Conv_2/kernel"][:, :, 3, :] != 0.0)  # was non-zero before
    assert int(adam_new.count) == int(adam_old.count)
    with pytest.raises(ValueError, match="Adam"):
        zero_adam_moments(optax.sgd(0.1).init(params), touched)


def test_redo_never_revives_a_pruned_weight():
    net, params, fresh = _net_and_params("moore")
    rng = np.random.default_rng(0)
    masks = jax.tree.map(
        lambda x: jnp.asarray(rng.random(x.shape) > 0.7) if x.ndim >= 2 else None, params
    )
    params = jax.tree.map(
        lambda x, m: x if m is None else jnp.where(m, x, 0.0),
        params,
        masks,
        is_leaf=lambda x: x is None,
    )
    layers, scores = _scores(net, params)
    # Everything counts as dormant at a huge tau: every hidden neuron is recycled.
    new, _, count = recycle_dormant(params, fresh, scores, layers, tau=1e9, masks=masks)
    assert int(count) == sum(int(np.asarray(s).size) for s in scores.values())
    flat_new, flat_masks = (
        _flat(new),
        {
            p: np.asarray(m)
            for p, m in zip(
                leaf_paths(params), jax.tree.leaves(masks, is_leaf=lambda x: x is None), strict=True
            )
            if m is not None
        },
    )
    for p, m in flat_masks.items():
        assert np.all(flat_new[p][~m] == 0.0), p


def test_reset_touches_only_the_output_layers():
    _, params, fresh = _net_and_params("mtppo", layer_norm=True)
    new, touched = reset_layers(params, fresh)
    old, new, fr, tc = _flat(params), _flat(new), _flat(fresh), _flat(touched)
    for p in old:
        if p.startswith(("actor/Dense_1/", "critic/Dense_1/")):
            np.testing.assert_array_equal(new[p], fr[p])
            assert tc[p].all()
        else:
            np.testing.assert_array_equal(new[p], old[p])
            assert not tc[p].any()
    with pytest.raises(ValueError, match="selects no parameter"):
        reset_layers(params, fresh, select=lambda p: False)


def test_graph_rejects_a_network_without_the_minigrid_layout():
    params = {"params": {"Dense_0": {"kernel": jnp.zeros((4, 8)), "bias": jnp.zeros(8)}}}
    with pytest.raises(ValueError, match="MiniGrid network"):
        minigrid_neuron_layers(params)
