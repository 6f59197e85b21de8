"""Online learning: FTRL-Proximal over hashed features, progressive-validation metrics."""

from recforge.online.ftrl import FTRLProximal
from recforge.online.hashing import FeatureHasher, field_salt
from recforge.online.metrics import ProgressiveMetrics

__all__ = ["FTRLProximal", "FeatureHasher", "ProgressiveMetrics", "field_salt"]
