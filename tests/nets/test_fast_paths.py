"""The fast paths of the networks agree with the plain ones: the matmul 2x2 convolution with
``nn.Conv``, and the task-major heads with the per-sample gather."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse.nets import make_network
from jaxsparse.nets.encoders import PatchConv2x2
from jaxsparse.nets.multitask import SINGLE_TASK


@pytest.mark.parametrize("cin,cout", [(3, 16), (16, 32)])
def test_patch_conv_equals_nn_conv(cin, cout):
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 7, 6, cin))
    conv = nn.Conv(cout, (2, 2), padding="VALID")
    params = conv.init(jax.random.PRNGKey(1), x)
    params["params"]["bias"] = jax.random.normal(jax.random.PRNGKey(2), (cout,))
    mine = PatchConv2x2(cout)
    assert jax.tree.map(jnp.shape, mine.init(jax.random.PRNGKey(1), x)) == jax.tree.map(
        jnp.shape, params
    )
    np.testing.assert_allclose(mine.apply(params, x), conv.apply(params, x), rtol=1e-5, atol=1e-5)
    grads = [jax.grad(lambda p, m=m: jnp.sum(jnp.sin(m.apply(p, x))))(params) for m in (mine, conv)]
    for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", ["mtppo", "moore"])
def test_task_major_heads_match_per_sample_heads(arch):
    n_tasks, per_task = 3, 4
    obs = jax.random.randint(jax.random.PRNGKey(0), (n_tasks * per_task, 7, 7, 3), 0, 11)
    task_id = jnp.repeat(jnp.arange(n_tasks), per_task)
    net = make_network(arch, n_tasks, 7)
    params = net.init(jax.random.PRNGKey(1), obs, task_id)
    plain = net.apply(params, obs, task_id)
    fast = net.apply(params, obs, task_id, task_major=True)
    for a, b in zip(plain, fast, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="divisible by n_tasks=3"):
        net.apply(params, obs[:-1], task_id[:-1], task_major=True)


@pytest.mark.parametrize("arch", ["mtppo", "moe", "moore"])
@pytest.mark.parametrize("layer_norm", [False, True])
def test_single_task_heads_match_per_sample_heads(arch, layer_norm):
    """A batch of one task (a gradient-surgery block; the Fisher trace's single sample): that
    task's kernels only, the same outputs and parameter gradients as the per-sample heads."""
    n_tasks, b = 3, 5
    obs = jax.random.randint(jax.random.PRNGKey(0), (b, 7, 7, 3), 0, 11)
    net = make_network(arch, n_tasks, 7, layer_norm=layer_norm)
    params = net.init(jax.random.PRNGKey(1), obs, jnp.zeros(b, jnp.int32))
    for task in range(n_tasks):
        task_id = jnp.full(b, task, jnp.int32)
        plain = net.apply(params, obs, task_id)
        single = net.apply(params, obs, task_id, task_major=SINGLE_TASK)
        for a, c in zip(plain, single, strict=True):
            np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-5)

        def loss(p, mode, task_id=task_id):
            logits, value = net.apply(p, obs, task_id, task_major=mode)
            return jnp.sum(jnp.sin(logits)) + jnp.sum(value**2)

        g_plain, g_single = (jax.grad(loss)(params, m) for m in (False, SINGLE_TASK))
        for a, c in zip(jax.tree.leaves(g_plain), jax.tree.leaves(g_single), strict=True):
            np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="task_major must be True, False or 'single'"):
        net.apply(params, obs, task_id, task_major="blocks")
