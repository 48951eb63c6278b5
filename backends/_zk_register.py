"""Registration in ZooKeeper: an ephemeral node of our session, put back whatever happens to it.

The node is ``{root}/{service}/{instance_id}`` (``instance_id`` defaults to the address) and the
session timeout is the registration's ``ttl``. A thread of its own makes sure, at once when
something happens and every ``ttl / 3`` seconds anyway, that:

* the node exists and belongs to our session: after a LOST session (expiry) kazoo opens a new
  session and the node is created again; a node deleted by someone else is put back (an
  ``exists`` watch on our own node wakes the thread);
* a node of another session is replaced (deleted, then created as ours): the node an earlier run
  of this server left behind, owned by a session that is dying. The one exception is a node of
  another live registration in this process with the same data: it is left alone, and taken over
  when it goes, so that two registrations of one instance keep one record;
* the data is ours (someone overwrote it: written again).

``close()`` deletes the node at once (only if it is ours) and closes the session; ``pause()``
deletes it and ``resume()`` creates it again. With ``username``/``password`` the node's ACL lets
every client read it and only its creator change it, and the service node, when this
registration creates it, lets every client read it and create children but only that digest
identity delete them (ZooKeeper checks a delete against the parent's ACL): servers of one service
share the credentials. A service node that already exists keeps the ACL it has.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from naming.core import Address, BackendUnavailableError, Backoff, KeptRegistration

from ._zk_client import ClientFactory, ZkSettings, zk_call
from ._zk_records import encode

__all__ = ["DEFAULT_CLOSE_TIMEOUT", "ZkRegistration"]

log = logging.getLogger("naming.zk")

DEFAULT_CLOSE_TIMEOUT = 2.0

_live_lock = threading.Lock()
_live: dict[int, bytes] = {}  # session id -> data, of this process's live registrations


class ZkRegistration(KeptRegistration):
    """See the module docstring. Thread-safe; ``close()`` is idempotent."""

    def __init__(
        self,
        settings: ZkSettings,
        factory: ClientFactory,
        address: Address,
        *,
        ttl: float,
        instance_id: str | None = None,
        record_format: str = "json",
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    ) -> None:
        instance = instance_id if instance_id is not None else address.addr
        if not isinstance(instance, str) or not instance or "/" in instance:
            raise ValueError(
                f"zk: instance_id must be a non-empty string without '/', got {instance!r}"
            )
        self.address = address
        self.path = f"{settings.path}/{instance}"
        self.ttl = ttl
        self.close_timeout = close_timeout
        self._settings = settings
        self._timeout = min(settings.connect_timeout, max(ttl / 3, 1.0))
        self._data = encode(address, record_format, name=settings.service, instance_id=instance)
        self._client = factory(settings, ttl)
        self._setup("zk", self.path, Backoff(maximum=max(ttl / 3, 0.1)), log)
        self._session: int | None = None
        self._connected = threading.Event()
        self._client.add_listener(self._on_state)
        self._client.start_async()
        self._connected.wait(
            settings.connect_timeout
        )  # the first connection may take a TLS handshake
        self._start(f"naming-zk-register-{instance}", "ZooKeeper")

    def __repr__(self) -> str:
        state = "closed" if self._closed else "paused" if self._paused else "active"
        return f"<ZkRegistration {self.path} ({state})>"

    # -- what KeptRegistration asks of a backend ------------------------------------------------

    def _withdraw(self, why: str, taken: Any) -> None:
        self._forget_session()
        self._delete_ours(why)

    def _release(self) -> None:
        try:
            self._client.stop()
        finally:
            self._client.close()

    # -- kazoo's threads -----------------------------------------------------------------------

    def _on_state(self, state: str) -> None:
        if state == "CONNECTED":
            self._connected.set()
            self._wake.set()
        else:
            self._connected.clear()

    def _on_node(self, event: Any) -> None:
        self._wake.set()

    # -- the loop ------------------------------------------------------------------------------

    def _keep(self) -> None:
        """One round: our node is there, owned by our session, holding our data."""
        from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

        if not self._active():
            return
        client = self._client
        if not self._connected.wait(self._timeout) or not client.connected:
            raise BackendUnavailableError(f"zk: not connected to {','.join(self._settings.hosts)}")
        session = int(client.client_id[0])
        stat = self._call("exists", client.exists_async(self.path, self._on_node))
        if stat is not None and stat.ephemeralOwner != session:
            with _live_lock:
                sibling = _live.get(stat.ephemeralOwner)
            if sibling == self._data:
                return  # another live registration of this process holds the same record
            log.warning("zk: %s belongs to another session; replacing it", self.path)
            with contextlib.suppress(NoNodeError):
                self._call("delete", client.delete_async(self.path, stat.version))
            stat = None
        if stat is None:
            self._make_parents()
            if not self._active():
                return
            try:
                self._call(
                    "create",
                    client.create_async(self.path, self._data, acl=self._acl(), ephemeral=True),
                )
            except NodeExistsError:
                self._wake.set()  # someone was faster: look again
                return
            self._remember_session(session)
            log.info("zk: registered %s as %s", self.address.addr, self.path)
            return
        self._remember_session(session)
        try:
            data, stat = self._call("get", client.get_async(self.path))
            if data != self._data:
                log.warning("zk: the data of %s was changed; writing it again", self.path)
                self._call("set", client.set_async(self.path, self._data, stat.version))
        except (NoNodeError, BadVersionError):
            self._wake.set()  # deleted or changed between our two reads: look again

    def _make_parents(self) -> None:
        from kazoo.exceptions import NodeExistsError

        settings = self._settings
        if settings.password is None:
            self._call("create parents", self._client.ensure_path_async(settings.path))
            return
        if settings.root != "/":
            self._call("create parents", self._client.ensure_path_async(settings.root))
        from kazoo.security import make_acl, make_digest_acl

        acl = [
            make_digest_acl(settings.username, settings.password, all=True),
            make_acl("world", "anyone", read=True, create=True),
        ]
        with contextlib.suppress(NodeExistsError):
            self._call("create parent", self._client.create_async(settings.path, acl=acl))

    def _acl(self) -> Any:
        if self._settings.password is None:
            return None
        from kazoo.security import CREATOR_ALL_ACL, READ_ACL_UNSAFE

        return list(CREATOR_ALL_ACL) + list(READ_ACL_UNSAFE)

    def _delete_ours(self, why: str) -> None:
        """Delete the node if our session owns it, waiting at most ``close_timeout``."""
        from kazoo.exceptions import KazooException

        client = self._client
        try:
            if not self._connected.wait(self.close_timeout) or not client.connected:
                raise BackendUnavailableError("zk: not connected")
            session = int(client.client_id[0])
            stat = client.exists_async(self.path).get(timeout=self.close_timeout)
            if stat is not None and stat.ephemeralOwner == session:
                client.delete_async(self.path, stat.version).get(timeout=self.close_timeout)
        except (KazooException, BackendUnavailableError) as exc:
            log.warning(
                "zk: on %s, could not delete %s (%s); it goes with the session",
                why,
                self.path,
                type(exc).__name__,
            )
        except Exception as exc:  # the handler's timeout
            log.warning("zk: on %s, no answer deleting %s (%s)", why, self.path, exc)

    def _call(self, what: str, result: Any) -> Any:
        return zk_call(f"{what} {self.path}", lambda: result.get(timeout=self._timeout))

    def _remember_session(self, session: int) -> None:
        with _live_lock:
            if self._session is not None and self._session != session:
                _live.pop(self._session, None)
            self._session = session
            if self._active():
                _live[session] = self._data

    def _forget_session(self) -> None:
        with _live_lock:
            if self._session is not None:
                _live.pop(self._session, None)
                self._session = None
