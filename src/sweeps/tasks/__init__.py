"""Tasks: one file per task, each a dataclass whose fields are its config (``conf/task/``).

Hydra instantiates a task from ``_target_``; nothing here dispatches on task names.
"""

from sweeps.tasks.base import SPLITS, Example, Grade, Task

__all__ = ["SPLITS", "Example", "Grade", "Task"]
