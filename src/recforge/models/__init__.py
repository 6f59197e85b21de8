"""Models: a registry and one file per model; importing this package registers them all."""

from recforge.models.multitask import dbmtl, esmm, mmoe, ple  # noqa: F401  (registers)
from recforge.models.rank import (  # noqa: F401  (registers)
    bst,
    dcn_v2,
    deepfm,
    din,
    fm,
    gbdt_lr,
    lr,
    multitower,
    widedeep,
)
from recforge.models.registry import MODELS, build_model, model_options, model_trainer, register_model

__all__ = ["MODELS", "build_model", "model_options", "model_trainer", "register_model"]
