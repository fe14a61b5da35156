"""Model architectures, one module each; built from a config through ``MODELS``."""

from torch import nn

from linctl.models.classifier import ClassifierModel
from linctl.models.encoder import EncoderModel
from linctl.registry import Registry

MODELS: Registry[nn.Module] = Registry("model", [EncoderModel, ClassifierModel])
ModelSpec = MODELS.config_union()

__all__ = ["MODELS", "ModelSpec"]
