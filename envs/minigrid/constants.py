"""MiniGrid's symbolic encoding, directions and actions, as integer constants.

Values are those of `minigrid.core.constants` (3.2.0), so an encoded cell
`(object, colour, state)` means the same thing in both packages.
"""

from __future__ import annotations

import enum

import numpy as np

# Object indices (minigrid OBJECT_TO_IDX).
UNSEEN, EMPTY, WALL, FLOOR, DOOR, KEY, BALL, BOX, GOAL, LAVA, AGENT = range(11)
OBJECT_NAMES = (
    "unseen", "empty", "wall", "floor", "door", "key", "ball", "box", "goal", "lava", "agent",
)  # fmt: skip

# Colour indices (minigrid COLOR_TO_IDX).
RED, GREEN, BLUE, PURPLE, YELLOW, GREY = range(6)
COLOUR_NAMES = ("red", "green", "blue", "purple", "yellow", "grey")
NUM_COLOURS = 6

# Door states (minigrid STATE_TO_IDX).
OPEN, CLOSED, LOCKED = 0, 1, 2

# Encoded cells as MiniGrid's Grid.encode writes them (empty is (1, 0, 0), never (0, 0, 0)).
EMPTY_CELL = np.array([EMPTY, 0, 0], np.uint8)
WALL_CELL = np.array([WALL, GREY, 0], np.uint8)
GOAL_CELL = np.array([GOAL, GREEN, 0], np.uint8)
LAVA_CELL = np.array([LAVA, RED, 0], np.uint8)

# Direction d moves the agent by DIR_TO_DELTA[d] = (d_row, d_col): 0 east, 1 south, 2 west,
# 3 north, the order of minigrid DIR_TO_VEC and of navix.grid.translate.
DIR_TO_DELTA = np.array([[0, 1], [1, 0], [0, -1], [-1, 0]], np.int32)

VIEW_SIZE = 7  # MiniGrid's default agent_view_size.


class Action(enum.IntEnum):
    """The 7 MiniGrid actions (minigrid.core.actions.Actions, navix MINIGRID_ACTION_SET)."""

    LEFT = 0
    RIGHT = 1
    FORWARD = 2
    PICKUP = 3
    DROP = 4
    TOGGLE = 5
    DONE = 6


NUM_ACTIONS = len(Action)
