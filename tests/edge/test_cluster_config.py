"""`[cluster]` in the configuration, its environment overrides, `serve --redis`, and a Redis password masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from classroom.cli import _config, _parser
from classroom.config import ConfigError, describe, load_config, mask_url_password


def test_defaults_are_one_machine() -> None:
    config = load_config(env={})
    assert config.cluster.redis_url == ""
    assert config.cluster.lease_s == 15.0 and config.cluster.heartbeat_s == 5.0
    assert "[cluster]" in describe(config)


def test_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[cluster]\nredis_url = "redis://10.0.0.5:6379/0"\ncounty = "沙坡头区"\nlease_s = 20\n',
                    encoding="utf-8")
    config = load_config(path, env={"CLASSROOM_CLUSTER__LEASE_S": "6", "CLASSROOM_CLUSTER__NODE_ID": "edge-3"})
    assert config.cluster.redis_url == "redis://10.0.0.5:6379/0"
    assert config.cluster.county == "沙坡头区"
    assert config.cluster.lease_s == 6.0 and config.cluster.node_id == "edge-3"


def test_bad_values_are_refused() -> None:
    with pytest.raises(ConfigError, match="redis_url"):
        load_config(env={"CLASSROOM_CLUSTER__REDIS_URL": "http://redis"})
    with pytest.raises(ConfigError, match="role"):
        load_config(env={"CLASSROOM_CLUSTER__ROLE": "relay"})
    with pytest.raises(ConfigError, match="positive"):
        load_config(env={"CLASSROOM_CLUSTER__LEASE_S": "0"})


def test_serve_redis_flag_overrides_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLASSROOM_CLUSTER__REDIS_URL", "redis://old:6379/0")
    args = _parser().parse_args(["serve", "--redis", "redis://127.0.0.1:6390/2"])
    assert _config(args).cluster.redis_url == "redis://127.0.0.1:6390/2"
    assert _config(_parser().parse_args(["serve"])).cluster.redis_url == "redis://old:6379/0"


def test_a_redis_password_is_masked_in_the_printed_configuration() -> None:
    assert mask_url_password("redis://:s3cr@t@redis.county:6379/0") == "redis://:********@redis.county:6379/0"
    assert mask_url_password("rediss://user:pw@h/1") == "rediss://user:********@h/1"
    assert mask_url_password("redis://h:6379/0") == "redis://h:6379/0"
    assert mask_url_password("https://classroom.example/a@b") == "https://classroom.example/a@b"
    config = load_config(env={"CLASSROOM_CLUSTER__REDIS_URL": "redis://:hunter2@10.0.0.5:6379/0"})
    printed = describe(config)
    assert "hunter2" not in printed and 'redis_url = "redis://:********@10.0.0.5:6379/0"' in printed
