"""The orchestration settings every module reads (set once at start).

Filled from the ``[orchestration]`` config section (docs/configuration.md) by
:func:`configure`; the defaults are Heat's (and DevStack's for the hidden tag).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from onestack.config import ConfigError


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
    hidden_stack_tags: list[str] = field(default_factory=lambda: ["hidden"])
    web_image_fetch: bool = True  # the engine reads WebImage URLs itself (no web-download import)
    web_image_hosts: list[str] = field(default_factory=list)  # hosts a WebImage URL may name; [] any


current = Settings()

_POSITIVE = ("max_stacks_per_tenant", "max_resources_per_stack", "max_nested_stack_depth", "max_template_size",
             "stack_action_timeout_mins")


def _words(value: str) -> list[str]:
    return [w.strip() for w in value.split(",") if w.strip()]


def configure(conf) -> Settings:
    o = conf.orchestration
    for key in _POSITIVE:
        if getattr(o, key) < 1:
            raise ConfigError(f"config key 'orchestration.{key}' must be at least 1, got {getattr(o, key)}")
    if not 0 < o.poll_min <= o.poll_max:
        raise ConfigError(f"config keys 'orchestration.poll_min' ({o.poll_min}) and 'orchestration.poll_max' "
                          f"({o.poll_max}) must be positive, poll_min no larger than poll_max")
    current.public_url = conf.public_url
    current.region = conf.identity.region
    for key in (*_POSITIVE, "poll_min", "poll_max", "web_image_fetch"):
        setattr(current, key, getattr(o, key))
    current.hidden_stack_tags = _words(o.hidden_stack_tags)
    current.web_image_hosts = [h.lower().strip("[]") for h in _words(o.web_image_hosts)]
    return current
