"""ZkWatcher: the instances under ``{root}/{service}``, followed with ZooKeeper's one-shot watches.

* The snapshot lists the children (setting a children watch), then reads every child with
  asynchronous gets issued all at once (each setting a data watch): one pass, not one round trip
  per child. A missing service node is an empty set, with an ``exists`` watch for its creation
  (Curator's parents are container nodes, removed when empty and created again later).
* A fired watch only wakes the loop; the loop reads again and sets the watch again. A children
  event costs one children list plus a get per added child; a data event one get. A child whose
  data changed is a DELETE of the old address plus an ADD of the new one.
* SUSPENDED (the connection is away, the session may live) keeps the set: nothing is read until
  the client is back. Whenever the client connects again, after SUSPENDED or after LOST (a new
  session), the watches may be gone (kazoo does not set them again), so the loop takes a new
  snapshot and emits only the difference.

Two children holding the same address are one address: it goes when the last of them goes.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from naming.core import Address, BackendUnavailableError, RecordSkipper, RegistryWatcher

from ._zk_client import ClientFactory, ZkSettings, zk_call
from ._zk_records import CODEC

__all__ = ["ZkWatcher"]

log = logging.getLogger("naming.zk")

_CHILDREN = ("children", "")
_RECONNECTED = ("reconnected", "")
_STOP = ("stop", "")


class ZkWatcher(RegistryWatcher):
    """See the module docstring. ``close()`` stops the loop and the kazoo client."""

    def __init__(self, settings: ZkSettings, factory: ClientFactory) -> None:
        super().__init__("zk", settings.path, logger=log)
        self.settings = settings
        self.path = settings.path
        self._client = factory(settings, settings.session_timeout)
        self._timeout = settings.connect_timeout
        self._events: queue.Queue[tuple[str, str]] = queue.Queue()
        self._connected = threading.Event()
        self._was_away = False
        self._started = False
        self._nodes: dict[str, tuple[bytes, Address | None]] = {}
        self._counts: dict[Address, int] = {}
        self._skipper: RecordSkipper[str] = RecordSkipper("zk", CODEC, logger=log)
        self._client.add_listener(self._on_state)
        self.start()

    def __repr__(self) -> str:
        return f"<ZkWatcher {self.path} on {','.join(self.settings.hosts)}>"

    # -- kazoo's threads: record and wake, nothing else ------------------------------------------

    def _on_state(self, state: str) -> None:
        if state == "CONNECTED":
            self._connected.set()
            if self._was_away:
                self._was_away = False
                self._events.put(_RECONNECTED)
        else:  # SUSPENDED or LOST: keep the set until the client is back
            self._connected.clear()
            self._was_away = True
            log.debug("zk: the watcher of %s is %s", self.path, state)

    def _on_children(self, event: Any) -> None:
        self._events.put(_CHILDREN)

    def _on_data(self, event: Any) -> None:
        if not event.path:  # a session event, not one of a node
            self._events.put(_CHILDREN)
            return
        child = event.path.rsplit("/", 1)[-1]
        self._events.put(("data", child))

    # -- the loop's halves ---------------------------------------------------------------------

    def snapshot(self) -> None:
        self._connect()
        children = self._list()
        nodes = self._read(children)
        self._nodes = nodes
        self._counts = {}
        for _, address in nodes.values():
            if address is not None:
                self._counts[address] = self._counts.get(address, 0) + 1
        self.publish(list(self._counts))

    def watch(self) -> None:
        self.resumed()
        while not self.stopping:
            try:
                event = self._events.get(timeout=1.0)
            except queue.Empty:
                continue
            kinds = {event}
            while True:  # a burst of events is one round
                try:
                    kinds.add(self._events.get_nowait())
                except queue.Empty:
                    break
            if _STOP in kinds or _RECONNECTED in kinds or self.stopping:
                return
            try:
                if _CHILDREN in kinds:
                    self._apply_children()
                changed = [child for kind, child in kinds if kind == "data"]
                for child in changed:
                    if child in self._nodes:
                        self._apply_data(child)
            except BackendUnavailableError:
                self.resync()  # watches may be lost with the connection: read everything again
                raise

    def interrupt(self) -> None:
        self._events.put(_STOP)
        self._connected.set()

    def release(self) -> None:
        try:
            self._client.stop()
        finally:
            self._client.close()

    # -- reads ---------------------------------------------------------------------------------

    def _connect(self) -> None:
        if not self._started:
            self._started = True
            self._client.start_async()
        if not self._connected.wait(self._timeout) or self.stopping:
            raise BackendUnavailableError(
                f"zk: no connection to {','.join(self.settings.hosts)} within {self._timeout:g} s"
            )

    def _list(self) -> list[str]:
        from kazoo.exceptions import NoNodeError

        for _ in range(3):  # the node may come and go between the two calls
            try:
                return list(
                    self._get("list", self._client.get_children_async(self.path, self._on_children))
                )
            except NoNodeError:
                pass
            try:
                if (
                    self._get("exists", self._client.exists_async(self.path, self._on_children))
                    is None
                ):
                    return []
            except NoNodeError:
                return []
        return []

    def _read(self, children: list[str]) -> dict[str, tuple[bytes, Address | None]]:
        from kazoo.exceptions import NoNodeError

        pending = [
            (child, self._client.get_async(f"{self.path}/{child}", self._on_data))
            for child in children
        ]
        nodes: dict[str, tuple[bytes, Address | None]] = {}
        for child, result in pending:
            try:
                data, _ = self._get("get", result)
            except NoNodeError:
                continue  # deleted meanwhile: the children watch has fired
            nodes[child] = (data, self._skipper.decode(child, data or b""))
        return nodes

    def _get(self, what: str, result: Any) -> Any:
        return zk_call(f"{what} {self.path}", lambda: result.get(timeout=self._timeout))

    # -- changes -------------------------------------------------------------------------------

    def _apply_children(self) -> None:
        children = self._list()
        present = set(children)
        for child in [c for c in self._nodes if c not in present]:
            self._node_removed(child)
        added = [c for c in children if c not in self._nodes]
        for child, node in self._read(added).items():
            self._node_added(child, node)

    def _apply_data(self, child: str) -> None:
        fresh = self._read([child])
        if child not in fresh:
            self._node_removed(child)
            return
        if fresh[child][0] != self._nodes[child][0]:
            self._node_removed(child)
            self._node_added(child, fresh[child])

    def _node_added(self, child: str, node: tuple[bytes, Address | None]) -> None:
        self._nodes[child] = node
        address = node[1]
        if address is not None:
            count = self._counts.get(address, 0)
            self._counts[address] = count + 1
            if count == 0:
                self.add(address)

    def _node_removed(self, child: str) -> None:
        _, address = self._nodes.pop(child)
        if address is None:
            return
        count = self._counts.get(address, 0) - 1
        if count <= 0:
            self._counts.pop(address, None)
            self.discard(address)
        else:
            self._counts[address] = count
