"""The six behaviours of the grpc-lb experiment, on real etcd and real gRPC servers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from naming._demo import Experiment, decode_fields, encode_fields, run_demo
from naming.testing.etcd import EtcdServer


def test_the_six_behaviours_hold(etcd_private: EtcdServer) -> None:
    lines: list[str] = []
    target = f"etcd://{etcd_private.endpoint}/greeter?prefix=/experiment"
    results = Experiment(target, etcd_private, lines.append, calls=300).run()
    assert [r.behaviour[:2] for r in results] == ["1.", "2.", "3.", "4.", "5.", "6."]
    failed = [f"{r.behaviour}: {r.measured}" for r in results if not r.passed]
    assert not failed, "\n".join(lines)
    measured = [r.measured for r in results]
    assert measured[0] == "S1=100, S2=100, S3=100; failed=0"
    assert "S1=" not in measured[1] and measured[1].endswith("failed=0")
    assert measured[2] == "S1=100, S2=100, S3=100; failed=0"
    assert "S4 calls=0; S3 still listed=True" in measured[3] and "failed=0" in measured[3]
    assert measured[4] == "S1=100, S2=100, S4=100; failed=0; records=S1,S2,S4"
    assert measured[5].count("DEADLINE_EXCEEDED") == 3


def test_with_an_external_registry_the_outage_behaviours_are_not_run(
    etcd_server: EtcdServer,
) -> None:
    lines: list[str] = []
    results = run_demo(etcd_server.endpoint, 30, lines.append)
    assert [r.behaviour[:2] for r in results] == ["1.", "2.", "3.", "6."]
    assert all(r.passed for r in results), "\n".join(lines)
    assert any("not run" in line for line in lines)


def test_the_demo_command_prints_the_table_and_exits_zero() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "naming", "demo", "--calls", "30"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 of 6 behaviours PASS" in result.stdout
    assert result.stdout.count("| PASS") == 6


def test_the_demo_refuses_a_call_count_it_cannot_split() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "naming", "demo", "--calls", "10"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--calls must be a positive multiple of 3" in result.stderr


@pytest.mark.parametrize("fields", [{}, {1: "x"}, {1: "é" * 200, 2: "S1"}])
def test_the_hand_encoded_greeter_messages_round_trip(fields: dict[int, str]) -> None:
    assert decode_fields(encode_fields(fields)) == fields


def test_the_hand_encoding_matches_protobuf() -> None:
    from google.protobuf import descriptor_pb2

    # FileDescriptorProto field 1 (name) and 2 (package) are strings: the same wire form.
    message = descriptor_pb2.FileDescriptorProto(name="Hello demo", package="S2")
    assert encode_fields({1: "Hello demo", 2: "S2"}) == message.SerializeToString()
