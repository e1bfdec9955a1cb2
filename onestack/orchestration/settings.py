"""The orchestration settings every module reads (set once at start).

There is no ``[orchestration]`` config section yet: these are the defaults Heat ships
with, kept in one place so a section can be added without touching the engine.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Settings:
    public_url: str = "http://127.0.0.1:8800"
    region: str = "RegionOne"
    max_stacks_per_tenant: int = 100
    max_resources_per_stack: int = 1000
    max_nested_stack_depth: int = 5
    max_template_size: int = 524288
    # the engine polls check_*_complete no more often than this, and no less often than poll_max
    poll_min: float = 0.05
    poll_max: float = 1.0
    stack_action_timeout_mins: int = 60  # a stack without timeout_mins
    service_user: str = "heat"


current = Settings()


def configure(conf) -> Settings:
    current.public_url = conf.public_url
    current.region = conf.identity.region
    return current
