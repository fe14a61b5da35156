"""Model architectures, one module each; built from a config through ``MODELS``."""

from linctl.models.base import Model, ModelConfig, ModelOutput
from linctl.models.classifier import ClassifierModel
from linctl.models.decoder import DecoderModel
from linctl.models.encoder import EncoderModel
from linctl.models.funnel import FunnelClassifierModel, FunnelElectraModel, FunnelModel
from linctl.models.seq2seq import Seq2SeqModel
from linctl.registry import Registry

MODELS: Registry[Model] = Registry(
    "model",
    [EncoderModel, ClassifierModel, DecoderModel, Seq2SeqModel, FunnelModel, FunnelClassifierModel,
     FunnelElectraModel],
)  # fmt: skip
ModelSpec = MODELS.config_union()

__all__ = ["MODELS", "Model", "ModelConfig", "ModelOutput", "ModelSpec"]
