"""Online learning: FTRL and deep models on event streams, progressive-validation metrics, drift monitoring."""

from recforge.online.drift import DriftConfig, DriftMonitor, WindowReport
from recforge.online.hashing import FeatureHasher, field_salt
from recforge.online.metrics import ProgressiveMetrics

__all__ = [
    "DriftConfig",
    "DriftMonitor",
    "FeatureHasher",
    "ProgressiveMetrics",
    "WindowReport",
    "field_salt",
]
