"""The typed, validated stack configuration: user intent in, one checked object out."""

from stackconfig.errors import ConfigError, Problem
from stackconfig.loader import PROJECT, from_pulumi, parse
from stackconfig.model import AuthConfig, StackConfig, SwarmConfig

__all__ = [
    "PROJECT",
    "AuthConfig",
    "ConfigError",
    "Problem",
    "StackConfig",
    "SwarmConfig",
    "from_pulumi",
    "parse",
]
