"""Bundles: the exported artifact (features + weights + manifest) and batch prediction from it."""

from recforge.bundle.bundle import Bundle, load_bundle, save_bundle
from recforge.bundle.predict import predict_file, rank_score, score_table, task_scores

__all__ = ["Bundle", "load_bundle", "predict_file", "rank_score", "save_bundle", "score_table", "task_scores"]
