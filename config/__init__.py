"""Platform settings: YAML under ``config/``, validated into frozen, typed objects."""

from config.loader import ConfigError, load_config
from config.naming import Names
from config.schema import ENVIRONMENT_NAMES, EnvironmentConfig, PlatformConfig, ProjectConfig

__all__ = [
    "ENVIRONMENT_NAMES",
    "ConfigError",
    "EnvironmentConfig",
    "Names",
    "PlatformConfig",
    "ProjectConfig",
    "load_config",
]
