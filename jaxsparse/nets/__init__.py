"""Multi-task MiniGrid networks (MOORE code): CNN encoder, per-task heads, MTPPO, MoE, MOORE."""

from jaxsparse.nets.encoders import (
    EXPERTS,
    FEATURE_DIM,
    OBS_SHAPE,
    MiniGridEncoder,
    MixtureEncoder,
    gram_schmidt,
)
from jaxsparse.nets.multitask import (
    ARCHS,
    MOORE,
    MTPPO,
    MoE,
    TaskDense,
    TaskHead,
    flatten_intermediates,
    make_network,
)

__all__ = [
    "ARCHS",
    "EXPERTS",
    "FEATURE_DIM",
    "MOORE",
    "MTPPO",
    "OBS_SHAPE",
    "MiniGridEncoder",
    "MixtureEncoder",
    "MoE",
    "TaskDense",
    "TaskHead",
    "flatten_intermediates",
    "gram_schmidt",
    "make_network",
]
