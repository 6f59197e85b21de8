"""Online learning: deep models and FTRL on event streams, progressive-validation metrics, drift monitoring."""

from recforge.online.drift import DriftConfig, DriftMonitor, WindowReport
from recforge.online.metrics import ProgressiveMetrics

__all__ = ["DriftConfig", "DriftMonitor", "ProgressiveMetrics", "WindowReport"]
