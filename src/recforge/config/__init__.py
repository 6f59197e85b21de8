"""Pipeline configuration: pydantic models for the one YAML file, and its loader."""

from recforge.config.feature_kinds import FEATURE_CONFIGS, FeatureBase, feature_kind
from recforge.config.features import (
    CrossFeatureConfig,
    FeatureConfig,
    IdFeatureConfig,
    LookupFeatureConfig,
    NumericFeatureConfig,
    SequenceFeatureConfig,
    TagFeatureConfig,
)
from recforge.config.loader import build_config, json_schema, load_config, yaml_path
from recforge.config.schema import DataConfig, ModelConfig, PipelineConfig, TrainConfig

__all__ = [
    "FEATURE_CONFIGS",
    "CrossFeatureConfig",
    "DataConfig",
    "FeatureBase",
    "FeatureConfig",
    "IdFeatureConfig",
    "LookupFeatureConfig",
    "ModelConfig",
    "NumericFeatureConfig",
    "PipelineConfig",
    "SequenceFeatureConfig",
    "TagFeatureConfig",
    "TrainConfig",
    "build_config",
    "feature_kind",
    "json_schema",
    "load_config",
    "yaml_path",
]
