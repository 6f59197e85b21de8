"""One error family for everything recforge raises on purpose.

Every message names where the problem is (file, YAML path, column, row) and how to fix it.
"""

from __future__ import annotations


class RecforgeError(Exception):
    """Base of every error recforge raises on purpose."""


class ConfigError(RecforgeError):
    """A pipeline config is wrong; `path` is the YAML path such as `features[2].boundaries`."""

    def __init__(self, path: str, problem: str, *, fix: str = "", file: str = "") -> None:
        head = f"{file}: " if file else ""
        where = f"{path}: " if path else ""
        text = f"{head}{where}{problem}"
        if fix:
            text += f"\n  fix: {fix}"
        super().__init__(text)
        self.path = path
        self.problem = problem
        self.fix = fix
        self.file = file


class DataError(RecforgeError):
    """Input data is missing, malformed or inconsistent with the config."""


class FeatureError(RecforgeError):
    """A feature cannot be fitted or applied; names the feature and the fix."""

    def __init__(self, feature: str, problem: str, *, fix: str = "") -> None:
        text = f"feature {feature!r}: {problem}"
        if fix:
            text += f"\n  fix: {fix}"
        super().__init__(text)
        self.feature = feature


class BundleError(RecforgeError):
    """A bundle directory is missing files or does not match what loads it."""


class EndpointError(RecforgeError):
    """A network endpoint cannot be bound or reached (a port in use, Redis or Kafka down); names the address."""
