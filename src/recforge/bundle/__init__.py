"""Bundles: the exported artifact (features + weights + manifest) and batch prediction from it."""

from recforge.bundle.bundle import Bundle, load_bundle, save_bundle
from recforge.bundle.predict import predict_file, score_table

__all__ = ["Bundle", "load_bundle", "predict_file", "save_bundle", "score_table"]
