"""Training objectives, one module each; built from a config through ``TASKS``."""

from linctl.registry import Registry
from linctl.tasks.base import Task
from linctl.tasks.classification import ClassificationTask
from linctl.tasks.electra import ElectraTask
from linctl.tasks.lm import LmTask
from linctl.tasks.mlm import MlmTask
from linctl.tasks.translation import TranslationTask

TASKS: Registry[Task] = Registry("task", [MlmTask, ClassificationTask, LmTask, TranslationTask, ElectraTask])
TaskSpec = TASKS.config_union()

__all__ = ["TASKS", "Task", "TaskSpec"]
