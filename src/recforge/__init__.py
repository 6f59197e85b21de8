"""recforge: from raw logs to a live recommender, driven by one YAML file."""

__version__ = "0.1.0"
