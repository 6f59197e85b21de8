"""Feature specs: fit on training Arrow batches, transform any Arrow batch into a Batch."""

from recforge.features import categorical, cross, numeric, sequence  # noqa: F401  (registers kinds)
from recforge.features.base import FEATURE_KINDS, Feature, FeatureState, TransformReport
from recforge.features.featureset import FeatureSet

__all__ = ["FEATURE_KINDS", "Feature", "FeatureSet", "FeatureState", "TransformReport"]
