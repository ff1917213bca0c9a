"""`classroom bench relay`: a short real run on two workers, checked for behaviour only (keys, the
split of subscribers over the link, each track once per link), never for its figures."""

from __future__ import annotations

import json

import pytest

from media import bench_relay


def test_relay_bench_short_run(capsys: pytest.CaptureFixture[str]) -> None:
    code = bench_relay.main(["--subs", "4", "--duration", "3", "--json", "--port-min", "46000",
                             "--port-max", "46999"])
    out = capsys.readouterr().out
    assert code == 0, out
    result = json.loads(out)
    assert result["subs_at_origin"] == 2 and result["subs_behind_link"] == 2
    assert result["links"] == 1
    # the lead's camera and sound, each sent once on the link over the window
    assert set(result["streams_per_link_per_track"]) == {f"{k.split('/')[0]}/{t}"
                                                         for k in result["streams_per_link_per_track"]
                                                         for t in ("camera", "audio")}
    assert 0.9 <= result["origin_streams_per_link_per_track"] <= 1.05
    assert result["relay_added_latency_p99_ms"] is not None
    assert result["loss_copy"] is not None and result["loss_copy"] < 0.01
    assert set(result["cpu_cores_by_worker"]) == {"control", "origin", "copy-0"}
    assert result["link_refused"] == 0
    assert result["fanout"]["valid"], result["fanout"]["problems"]


def test_relay_bench_measures_what_protecting_a_datagram_costs(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_relay.main(["--auth-costs", "--json", "--packet-bytes", "300"]) == 0
    costs = json.loads(capsys.readouterr().out)
    assert costs["packet_bytes"] == 300
    for key in ("link_seal_us", "link_open_us", "aes256gcm_us", "chacha20poly1305_us", "blake2b_128_us",
                "hmac_sha256_128_us", "srtp_protect_us"):
        assert costs[key] > 0
