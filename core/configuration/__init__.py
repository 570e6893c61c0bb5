"""Configuration: YAML files in ``config/`` validated into frozen objects."""

from .loader import ConfigError, Problem, load_config
from .model import Agent, Config, Hotline, Menu, Program, Queue, ServiceSettings

__all__ = [
    "Agent", "Config", "ConfigError", "Hotline", "Menu", "Problem", "Program", "Queue",
    "ServiceSettings", "load_config",
]
