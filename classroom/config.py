"""One TOML file plus environment overrides, every key with a default.

Sections map onto frozen dataclasses by field name. An environment variable
`CLASSROOM_<SECTION>__<KEY>` (e.g. `CLASSROOM_SERVER__PORT=8081`) overrides the file. The effective
configuration is printed at start with secrets masked.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.config import ClusterConfig
from media.config import MediaConfig
from monitoring.alerts import AlertConfig
from monitoring.config import MonitoringConfig
from scheduler.config import SchedulerConfig
from scheduler.rules.recording import RecordingConfig
from signaling.config import SignalingConfig

# alert_webhooks: a robot's address carries its access token
SECRET_WORDS = frozenset({"password", "secret", "token", "key", "webhooks"})


def is_secret(name: str) -> bool:
    """A setting whose value is masked: one of its underscore-separated words names a secret.

    Whole words, not substrings: `tls_key` and `turn_password` are masked, `keyframe_request_interval`
    is not (it contains "key" only inside "keyframe")."""
    return any(word in SECRET_WORDS for word in name.lower().split("_"))


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class ServerConfig:
    host: str = "0.0.0.0"
    port: int = 8080
    data_dir: str = "data"
    database: str = ""  # default: <data_dir>/classroom.sqlite3
    admin_token: str = ""  # default: generated on first start into <data_dir>/admin-token
    log_level: str = "INFO"

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser()

    @property
    def database_path(self) -> Path:
        return Path(self.database).expanduser() if self.database else self.data_path / "classroom.sqlite3"


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    signaling: SignalingConfig = field(default_factory=SignalingConfig)
    alerts: AlertConfig = field(default_factory=AlertConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)


def _convert(value: Any, kind: Any, where: str) -> Any:
    origin = typing.get_origin(kind)
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list")
        return tuple(str(v) for v in value)
    if kind is bool:
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ConfigError(f"{where} must be true or false, not {value!r}")
        return bool(value)
    if kind in (int, float, str):
        try:
            if kind is int and isinstance(value, float):
                raise ValueError
            return kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be {kind.__name__}, not {value!r}") from None
    return value


def _section(cls: type, values: Mapping[str, Any], name: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown key(s) in [{name}]: {', '.join(sorted(unknown))}")
    kwargs = {k: _convert(v, hints[k], f"[{name}] {k}") for k, v in values.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{name}]: {exc}") from exc


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    raw: dict[str, dict[str, Any]] = {}
    path = path or (Path(env["CLASSROOM_CONFIG"]) if env.get("CLASSROOM_CONFIG") else None)
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"configuration file {path} does not exist") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"configuration file {path}: {exc}") from exc
    sections = {f.name: f for f in dataclasses.fields(Config)}
    unknown = set(raw) - set(sections)
    if unknown:
        raise ConfigError(f"unknown section(s): {', '.join(sorted(unknown))}")
    for key, value in env.items():
        if not key.startswith("CLASSROOM_") or "__" not in key:
            continue
        section, _, name = key[len("CLASSROOM_") :].lower().partition("__")
        if section in sections:
            raw.setdefault(section, {})[name] = value
    hints = typing.get_type_hints(Config)
    return Config(**{name: _section(hints[name], raw.get(name, {}), name) for name in sections})


def describe(config: Config) -> str:
    """The effective configuration as TOML, secrets masked."""
    lines: list[str] = []
    for section in dataclasses.fields(config):
        lines.append(f"[{section.name}]")
        for f in dataclasses.fields(getattr(config, section.name)):
            value = getattr(getattr(config, section.name), f.name)
            if is_secret(f.name) and value:
                value = "********"
            elif isinstance(value, str):
                value = mask_url_password(value)
            lines.append(f"{f.name} = {_toml(value)}")
        lines.append("")
    return "\n".join(lines)


def mask_url_password(value: str) -> str:
    """`redis://:secret@host:6379/0` -> `redis://:********@host:6379/0`; anything else as it is."""
    scheme, sep, rest = value.partition("://")
    netloc = rest.split("/", 1)[0]
    if not sep or "@" not in netloc:
        return value
    userinfo, _, host = netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not colon or not password:
        return value
    return f"{scheme}://{user}:********@{host}{rest[len(netloc):]}"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)
