"""Model families for the ablation harness: a registry, a factory and shared layers.

Importing this package registers every model (mlp, cnn, resnet, vit, transformer1d, gpt).
"""

from harness.models import cnn, gpt, mlp, resnet, transformer1d, vit  # noqa: F401 (register)
from harness.models.base import MODELS, ModelInfo, data_kind, model_info
from harness.models.factory import count_parameters, create_model, model_capabilities

__all__ = [
    "MODELS",
    "ModelInfo",
    "count_parameters",
    "create_model",
    "data_kind",
    "model_capabilities",
    "model_info",
]
