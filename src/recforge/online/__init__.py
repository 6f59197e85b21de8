"""Online learning: FTRL-Proximal over hashed features, progressive-validation metrics, drift monitoring."""

from recforge.online.drift import DriftConfig, DriftMonitor, WindowReport
from recforge.online.ftrl import FTRLProximal
from recforge.online.hashing import FeatureHasher, field_salt
from recforge.online.metrics import ProgressiveMetrics

__all__ = [
    "DriftConfig",
    "DriftMonitor",
    "FTRLProximal",
    "FeatureHasher",
    "ProgressiveMetrics",
    "WindowReport",
    "field_salt",
]
