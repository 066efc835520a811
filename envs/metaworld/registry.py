"""Task names -> environment classes, with clear errors for names that are not (yet) ported."""

from __future__ import annotations

from typing import Any

from envs.metaworld.base import SawyerEnv
from envs.metaworld.models import MT10_SCENES, check_task, metaworld_dir
from envs.metaworld.tasks.button_press_topdown import ButtonPressTopdownEnv
from envs.metaworld.tasks.door import DoorOpenEnv
from envs.metaworld.tasks.drawer import DrawerCloseEnv, DrawerOpenEnv
from envs.metaworld.tasks.peg_insert_side import PegInsertSideEnv
from envs.metaworld.tasks.pick_place import PickPlaceEnv
from envs.metaworld.tasks.push import PushEnv
from envs.metaworld.tasks.reach import ReachEnv
from envs.metaworld.tasks.window import WindowCloseEnv, WindowOpenEnv

TASKS: dict[str, type[SawyerEnv]] = {
    "reach-v3": ReachEnv,
    "push-v3": PushEnv,
    "pick-place-v3": PickPlaceEnv,
    "door-open-v3": DoorOpenEnv,
    "drawer-open-v3": DrawerOpenEnv,
    "drawer-close-v3": DrawerCloseEnv,
    "button-press-topdown-v3": ButtonPressTopdownEnv,
    "peg-insert-side-v3": PegInsertSideEnv,
    "window-open-v3": WindowOpenEnv,
    "window-close-v3": WindowCloseEnv,
}
# The MT10 task names, in Meta-World's order (all ten in TASKS).
TASK_NAMES: tuple[str, ...] = tuple(MT10_SCENES)


def make(task: str, **kwargs: Any) -> SawyerEnv:
    """The environment of an MT10 task name ("reach-v3", ...); kwargs go to `SawyerEnv`.

    Raises ValueError for an unknown name (listing the MT10 names) and
    `MetaWorldUnavailableError` without a supported `metaworld`.
    """
    check_task(task)
    metaworld_dir()
    return TASKS[task](**kwargs)
