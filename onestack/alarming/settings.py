"""The alarming settings every module reads (set once at start), from ``[alarming]``."""

from __future__ import annotations

from dataclasses import dataclass

from onestack.config import ConfigError


@dataclass
class Settings:
    public_url: str = "http://127.0.0.1:8800"
    metric_url: str = "http://127.0.0.1:8800/metric"
    evaluation_interval: int = 60
    additional_ingestion_lag: int = 0
    notifier_timeout: float = 10.0
    notifier_max_retries: int = 3
    notifier_retry_backoff: float = 1.0
    project_alarm_quota: int = -1
    user_alarm_quota: int = -1
    alarm_max_actions: int = -1


current = Settings()


def configure(conf) -> Settings:
    a = conf.alarming
    if a.evaluation_interval < 1:
        raise ConfigError(f"config key 'alarming.evaluation_interval' must be at least 1, "
                          f"got {a.evaluation_interval}")
    for key in ("notifier_max_retries", "additional_ingestion_lag"):
        if getattr(a, key) < 0:
            raise ConfigError(f"config key 'alarming.{key}' must not be negative, got {getattr(a, key)}")
    for key in ("notifier_timeout", "notifier_retry_backoff"):
        if getattr(a, key) <= 0:
            raise ConfigError(f"config key 'alarming.{key}' must be positive, got {getattr(a, key)}")
    for key in ("project_alarm_quota", "user_alarm_quota", "alarm_max_actions"):
        if getattr(a, key) < -1:
            raise ConfigError(f"config key 'alarming.{key}' must be -1 (unlimited) or more, "
                              f"got {getattr(a, key)}")
    current.public_url = conf.public_url
    current.metric_url = (a.metric_url or conf.public_url + "/metric").rstrip("/")
    for key in ("evaluation_interval", "additional_ingestion_lag", "notifier_timeout", "notifier_max_retries",
                "notifier_retry_backoff", "project_alarm_quota", "user_alarm_quota", "alarm_max_actions"):
        setattr(current, key, getattr(a, key))
    return current
