"""Which parameters belong to which hidden neuron: the neuron graph of the MiniGrid networks.

ReDo (recycle a neuron: re-initialise its incoming weights, zero its outgoing weights) and the
per-layer dormant statistics need to know, for every hidden layer, its sown activation and the
parameter entries that feed it and that read it. ``minigrid_neuron_layers`` derives that from
the parameter paths of ``jaxsparse.nets`` (MTPPO, MoE, MOORE; shared or separate encoders):

- encoder conv ``i`` of every encoder or expert: a channel is a neuron (activation
  ``<encoder>/conv_i``); incoming: ``Conv_i`` kernel ``[..., out]`` and bias, the channel's
  LayerNorm scale and bias; outgoing: the next conv's kernel ``[:, :, in, :]``, or, after the last
  conv of an encoder (not an expert), the rows of the per-task head ``Dense_0`` kernels that read
  that channel (features are flattened NHWC: row ``position * C + channel``);
- the last conv of a MoE/MOORE expert is linear and feeds the (weightless) mixture, so it is not a
  recyclable layer, and not counted as a hidden layer;
- per-task head hidden layers ``actor/hidden`` and ``critic/hidden``: neuron ``(task, unit)``;
  incoming: ``Dense_0`` kernel ``[t, :, j]``, bias and per-task LayerNorm ``[t, j]``; outgoing:
  ``Dense_1`` kernel ``[t, j, :]``. Scores of a per-task layer are normalised within each task
  (each task's head is its own layer) on that task's samples (batches are task-major).

Output layers (``Dense_1``) are never a neuron layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from jaxsparse.plasticity.metrics import neuron_scores
from jaxsparse.sparsity.masks import leaf_paths, leaves_by_path, path_str

Array = jax.Array
PyTree = Any
_NUM_CONVS = 3


@dataclass(frozen=True)
class Slot:
    """Entries of parameter ``path`` that belong to the neurons: the neuron mask's axes sit at
    ``axes`` of the parameter (ascending); ``tile`` repeats a 1-D mask along its axis (flattened
    NHWC conv features: ``tile`` positions of C channels)."""

    path: str
    axes: tuple[int, ...]
    tile: int = 1

    def entries(self, neuron_mask: Array, shape: tuple[int, ...]) -> Array:
        """The boolean entry mask of shape ``shape`` selected by ``neuron_mask``."""
        m = jnp.tile(neuron_mask, self.tile) if self.tile > 1 else neuron_mask
        if m.ndim != len(self.axes):
            raise ValueError(f"{self.path}: mask of rank {m.ndim} for axes {self.axes}")
        expanded = [1] * len(shape)
        for i, axis in enumerate(self.axes):
            expanded[axis] = m.shape[i]
        return jnp.broadcast_to(m.reshape(expanded), shape)


@dataclass(frozen=True)
class NeuronLayer:
    """One hidden layer: its activation (``name``), who uses it (``roles``: actor and/or critic),
    whether its neurons are per task, and its incoming and outgoing parameter entries."""

    name: str
    roles: tuple[str, ...]
    per_task: bool
    incoming: tuple[Slot, ...]
    outgoing: tuple[Slot, ...]


def _roles(prefix: str) -> tuple[str, ...]:
    parts = prefix.split("/")
    if "actor" in parts:
        return ("actor",)
    if "critic" in parts:
        return ("critic",)
    return ("actor", "critic")


def policy_leaves(params: PyTree) -> PyTree:
    """A tree of bools parallel to ``params``: True for every parameter the policy's output
    depends on (all but the critic's: a leaf whose path has a ``critic`` component)."""
    return jax.tree_util.tree_map_with_path(lambda p, _: "actor" in _roles(path_str(p)), params)


def minigrid_neuron_layers(params: PyTree) -> tuple[NeuronLayer, ...]:
    """The hidden layers of a ``jaxsparse.nets`` MiniGrid network, from its parameter paths.

    Raises ``ValueError`` for a network without that layout (e.g. the gymnax MLP).
    """
    shapes = {
        p: jnp.shape(x) for p, x in zip(leaf_paths(params), jax.tree.leaves(params), strict=True)
    }
    paths = set(shapes)
    encoders = sorted(p[: -len("/Conv_0/kernel")] for p in paths if p.endswith("/Conv_0/kernel"))
    heads = [r for r in ("actor", "critic") if f"{r}/Dense_0/kernel" in paths]
    if not encoders or len(heads) != 2:
        raise ValueError(
            "plasticity interventions and diagnostics need a MiniGrid network of jaxsparse.nets "
            "(mtppo, moe or moore: encoder Conv_0..2 and actor/critic heads); got parameters "
            f"{sorted(paths)[:8]}..."
        )

    def opt(path: str, axes: tuple[int, ...]) -> tuple[Slot, ...]:
        return (Slot(path, axes),) if path in paths else ()

    layers = []
    for enc in encoders:
        roles = _roles(enc)
        is_expert = enc.rsplit("/", 1)[-1].startswith("expert_")
        for i in range(_NUM_CONVS):
            incoming = (
                Slot(f"{enc}/Conv_{i}/kernel", (3,)),
                Slot(f"{enc}/Conv_{i}/bias", (0,)),
                *opt(f"{enc}/LayerNorm_{i}/scale", (0,)),
                *opt(f"{enc}/LayerNorm_{i}/bias", (0,)),
            )
            if i + 1 < _NUM_CONVS:
                outgoing: tuple[Slot, ...] = (Slot(f"{enc}/Conv_{i + 1}/kernel", (2,)),)
            elif is_expert:
                continue  # linear expert output into the mixture: no weights read it
            else:
                channels = shapes[f"{enc}/Conv_{i}/kernel"][-1]
                outgoing = tuple(
                    Slot(f"{r}/Dense_0/kernel", (1,), shapes[f"{r}/Dense_0/kernel"][1] // channels)
                    for r in roles
                )
            layers.append(NeuronLayer(f"{enc}/conv_{i}", roles, False, incoming, outgoing))
    for r in heads:
        incoming = (
            Slot(f"{r}/Dense_0/kernel", (0, 2)),
            Slot(f"{r}/Dense_0/bias", (0, 1)),
            *opt(f"{r}/ln_scale", (0, 1)),
            *opt(f"{r}/ln_bias", (0, 1)),
        )
        outgoing = (Slot(f"{r}/Dense_1/kernel", (0, 1)),)
        layers.append(NeuronLayer(f"{r}/hidden", (r,), True, incoming, outgoing))
    return tuple(layers)


def layer_scores(activation: Array, layer: NeuronLayer, num_tasks: int) -> Array:
    """ReDo scores of one layer: ``[C]``, or ``[T, H]`` for a per-task layer (task-major batch,
    scores normalised within each task)."""
    if not layer.per_task:
        return neuron_scores(activation)
    b = activation.shape[0]
    if b % num_tasks:
        raise ValueError(f"{layer.name}: batch {b} is not task-major over {num_tasks} tasks")
    blocks = activation.reshape(num_tasks, b // num_tasks, *activation.shape[1:])
    return jax.vmap(neuron_scores)(blocks)


def all_scores(
    activations: Mapping[str, Array], layers: tuple[NeuronLayer, ...], num_tasks: int
) -> dict[str, Array]:
    """``layer_scores`` of every layer, by activation name."""
    missing = [layer.name for layer in layers if layer.name not in activations]
    if missing:
        raise ValueError(f"activations {missing} not sown; have {sorted(activations)}")
    return {layer.name: layer_scores(activations[layer.name], layer, num_tasks) for layer in layers}


def live_neurons(layer: NeuronLayer, masks: Mapping[str, Array | None]) -> Array | None:
    """True for each neuron of ``layer`` that keeps at least one unpruned incoming weight (its
    kernel, ``layer.incoming[0]``), shaped like its scores; ``None`` when that kernel is dense.
    ``masks``: mask (or ``None``) by parameter path, as ``sparsity.masks.leaves_by_path`` gives."""
    slot = layer.incoming[0]
    mask = masks.get(slot.path)
    if mask is None:
        return None
    other = tuple(a for a in range(mask.ndim) if a not in slot.axes)
    return jnp.any(mask, axis=other)


def dormant_summary(
    scores: Mapping[str, Array],
    layers: tuple[NeuronLayer, ...],
    tau: float,
    masks: PyTree | None = None,
) -> dict[str, Array]:
    """tau-dormant fractions: ``dormant_actor`` / ``dormant_critic`` (dormant neurons over all
    neurons of the layers each uses, pooled) and ``dormant/<layer>`` per layer.

    With the sparsity ``masks`` (a tree parallel to the parameters; ``None`` leaves are dense)
    also ``cut_actor`` / ``cut_critic``, the fraction of neurons whose incoming weights are all
    pruned (their activation no longer depends on the input: at high sparsity most of them are
    dormant by construction), and ``dormant_live_actor`` / ``dormant_live_critic``, the dormant
    fraction among the other neurons (equal to ``dormant_*`` for a dense network)."""
    flat_masks = leaves_by_path(masks) if masks is not None else None
    out: dict[str, Array] = {}
    roles = ("actor", "critic")
    count = {r: jnp.int32(0) for r in roles}
    total = {r: 0 for r in roles}
    live_count = {r: jnp.int32(0) for r in roles}
    live_total = {r: jnp.int32(0) for r in roles}
    for layer in layers:
        dormant = scores[layer.name] <= tau
        out[f"dormant/{layer.name}"] = jnp.mean(dormant.astype(jnp.float32))
        live = None if flat_masks is None else live_neurons(layer, flat_masks)
        if live is None:
            live = jnp.ones(dormant.shape, bool)
        for r in layer.roles:
            count[r] = count[r] + jnp.sum(dormant, dtype=jnp.int32)
            total[r] += dormant.size
            live_count[r] = live_count[r] + jnp.sum(dormant & live, dtype=jnp.int32)
            live_total[r] = live_total[r] + jnp.sum(live, dtype=jnp.int32)
    for r in roles:
        out[f"dormant_{r}"] = count[r] / max(total[r], 1)
        if flat_masks is not None:
            out[f"cut_{r}"] = (total[r] - live_total[r]) / max(total[r], 1)  # 0 exactly
            out[f"dormant_live_{r}"] = live_count[r] / jnp.maximum(live_total[r], 1)
    return out
