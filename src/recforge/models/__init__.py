"""Models: a registry and one file per model; importing this package registers them all."""

from recforge.models.rank import dcn_v2, deepfm, fm, lr, multitower, widedeep  # noqa: F401  (registers)
from recforge.models.registry import MODELS, build_model, model_options, register_model

__all__ = ["MODELS", "build_model", "model_options", "register_model"]
