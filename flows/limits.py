"""Connection limits that hold across runs and workers, kept by the Prefect server.

Each connection gets one Prefect global concurrency limit, named
``okr:<connection>:<8 hex digits of its host, port and database>`` (two projects that
call different databases ``warehouse`` do not share a bound; the driver, the user, the
password and the URL's options are not part of it). It is
created from the settings the first time a run uses the connection, and its size is
updated when the settings change (the last run to start wins). Its size is
``max_concurrency``, or with ``rate_limit_per_second`` the slots the rate is split into
(``run.limits.share_rate``).

A run's lanes take their slots with a *lease* (``/v2/concurrency_limits/increment-with-lease``)
and give them back when they end, never per query or request. The lanes a run starts
together ask together: one lease for as many slots as the read of the limit that created
or resized it found free (read again if that was over a second ago), so a run pays two
API calls per connection, not two per lane (each call costs a SQLite-backed server some
15 ms, and this process makes them one at a time); a lane that found no free slot takes
one of its own when one frees up. While slots are held, one
thread renews their leases every :data:`RENEW_EVERY_SECONDS`; a run that crashes or is
killed stops renewing, its leases expire after :data:`LEASE_SECONDS` (the server's
shortest) and the server's repossessor gives the slots back on its next pass (every 15 s
by default): within about 75 s.

Keys that name no connection (a bare host) keep the process's own bound
(:class:`okr_pipeline.run.limits.LocalLimits`). When the Prefect API refuses or cannot
be reached, a warning is logged and the run goes on with the process's own bound.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
)
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.context import FlowRunContext, TaskRunContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.settings import get_current_settings

from okr_pipeline.flows.busy_retry import retry_busy_quickly
from okr_pipeline.okr_core.redaction import mask_url
from okr_pipeline.okr_core.settings import ConnectionSettings, Settings
from okr_pipeline.run.limits import (
    ConnectionLimits,
    KeyBounds,
    LocalLimits,
    Pacer,
    connection_name,
    key_bounds,
)

__all__ = [
    "LEASE_SECONDS",
    "RENEW_EVERY_SECONDS",
    "PrefectConnectionLimits",
    "connection_limits",
    "limit_name",
]

LEASE_SECONDS = 60.0  # the shortest lease the Prefect server grants
RENEW_EVERY_SECONDS = 20.0  # a third of the lease: two renewals may fail before it expires
MAX_POLL_SECONDS = 1.0  # the server's Retry-After can reach 30 s; a freed slot waits less
FRESH_SECONDS = 1.0  # a read of a limit this recent tells its free slots well enough

_log = logging.getLogger(__name__)

# This process's calls to the concurrency limits' routes go one at a time: calls at once
# (lanes taking and giving back slots) make a SQLite-backed server answer 503, and
# Prefect's client then waits two seconds or more before it tries again.
_ONE_CALL = threading.Lock()


def limit_name(connection: str, settings: ConnectionSettings) -> str:
    """The Prefect global concurrency limit of a connection.

    Args:
        connection: The connection's name in the settings.
        settings: Its settings (the address, never the password, goes into the name).
    """
    # Host, port and database (or path) only: the driver, the options and the user may
    # differ between two projects that reach the same server.
    parts = urlsplit(mask_url(settings.url.get_secret_value()))
    try:
        port = parts.port
    except ValueError:
        port = None
    address = f"{(parts.hostname or '').lower()}:{port or ''}{parts.path}"
    digest = hashlib.sha256(address.encode()).hexdigest()[:8]
    return f"okr:{connection}:{digest}"


def connection_limits(settings: Settings) -> ConnectionLimits | None:
    """The limits of ``settings``' connections, shared through the Prefect API.

    Args:
        settings: The run's settings (its connections).

    Returns:
        Limits kept by the Prefect server the run talks to.
    """
    return PrefectConnectionLimits(settings.connections)


class _Leases:
    """The leases a process holds, renewed by one thread while there are any."""

    def __init__(self, client: SyncPrefectClient) -> None:
        self._client = client
        self._held: set[UUID] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, lease: UUID) -> None:
        with self._lock:
            self._held.add(lease)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._renew, name="okr-lease-renewal", daemon=True
                )
                self._thread.start()

    def remove(self, lease: UUID) -> None:
        with self._lock:
            self._held.discard(lease)
            if not self._held:
                self._wake.set()  # the thread ends rather than wait out its pause

    def _renew(self) -> None:
        while True:
            self._wake.wait(RENEW_EVERY_SECONDS)
            with self._lock:
                if not self._held:
                    # Decided under the lock: add() starts a new thread from now on.
                    self._thread = None
                    self._wake.clear()
                    return
                self._wake.clear()
                held = list(self._held)
            for lease in held:
                try:
                    with _ONE_CALL:
                        self._client.renew_concurrency_lease(lease, lease_duration=LEASE_SECONDS)
                except Exception as exc:  # noqa: BLE001 - the next pass tries again
                    _log.warning("Could not renew a connection slot's lease: %s", _brief(exc))


_CLIENTS: dict[str, SyncPrefectClient] = {}
_CLIENTS_LOCK = threading.Lock()


def _shared_client() -> SyncPrefectClient:
    """One started sync client per Prefect API in this process (making one costs ~40 ms)."""
    url = str(get_current_settings().api.url or "")
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(url)
        if client is None:
            client = retry_busy_quickly(get_client(sync_client=True))
            client.__enter__()
            _CLIENTS[url] = client
            atexit.register(client.__exit__, None, None, None)
        return client


class _Group:
    """Slots of one key held under one lease, handed to the run's lanes one each."""

    def __init__(self, lease: UUID, size: int) -> None:
        self.lease = lease
        self.spare = size - 1  # the first is its taker's
        self.holders = 1
        self.clears_in = 0.0  # the longest wait of its holders' pacers


class PrefectConnectionLimits:
    """Connection limits kept by the Prefect server (see the module's docstring).

    Args:
        connections: The run's connections by name.
        client: A started sync Prefect client; default: the process's one for the
            current settings' API.
    """

    def __init__(
        self,
        connections: Mapping[str, ConnectionSettings],
        client: SyncPrefectClient | None = None,
    ) -> None:
        self._connections = connections
        self._local = LocalLimits(connections)
        self._client = client or _shared_client()
        self._leases = _Leases(self._client)
        self._ready: dict[str, str | None] = {}  # key -> limit name (None: kept locally)
        self._read: dict[str, _Reading] = {}  # key -> the limit as _limit last read it
        self._lock = threading.Lock()
        self._holder = _holder()
        self._groups: dict[str, _Group] = {}  # key -> the group lanes may join
        self._expected: dict[str, int] = {}  # key -> lanes about to start
        self._asking: set[str] = set()  # keys whose group is being asked for
        self._changed = threading.Condition()

    def bounds(self, key: str) -> KeyBounds:
        """The bounds of ``key`` from the settings."""
        return key_bounds(key, self._connections)

    def expect(self, key: str, lanes: int) -> None:
        """``lanes`` lanes of ``key`` are about to start: they ask for their slots together."""
        with self._changed:
            self._expected[key] = lanes

    @contextmanager
    def slot(self, key: str) -> Iterator[Pacer | None]:
        """Hold one slot of the key's Prefect limit while the block runs.

        Blocks while the limit is full (every run and worker counted). The slot goes back
        from a thread of its own once the block has ended; with a rate limit, only once
        its pacer's window is empty (within a second), since its next holder may be
        another process whose pacer starts with an empty window.
        """
        bounds = self.bounds(key)
        name = self._limit(key, bounds)
        group = self._join(key, name) if name is not None else None
        if group is None and name is not None:
            lease = self._acquire(key, name)
            group = _Group(lease, 1) if lease is not None else None
        if group is None:
            with self._local.slot(key) as pacer:
                yield pacer
            return
        pacer = bounds.pacer()
        try:
            yield pacer
        finally:
            self._leave(key, group, pacer.clears_in() if pacer is not None else 0.0)

    def _join(self, key: str, name: str) -> _Group | None:
        """A slot of the run's group for ``key``, asking for the group if none is there.

        Returns:
            The group, or None when the lane must ask for a slot of its own.
        """
        with self._changed:
            while True:
                group = self._groups.get(key)
                if group is not None and group.spare > 0:
                    group.spare -= 1
                    group.holders += 1
                    return group
                if key not in self._asking:
                    break
                self._changed.wait()  # another lane is asking for the group
            wanted = self._expected.pop(key, 1)
            if wanted <= 1:
                return None
            self._asking.add(key)
        taken: tuple[UUID, int] | None = None
        with self._lock:
            reading = self._read.pop(key, None)
        try:
            taken = self._acquire_free(name, wanted, reading)
        finally:
            with self._changed:
                self._asking.discard(key)
                group = _Group(*taken) if taken is not None else None
                if group is not None:
                    self._groups[key] = group
                self._changed.notify_all()
        return group

    def _leave(self, key: str, group: _Group, clears_in: float) -> None:
        """One holder is done; the group's lease goes back when the last one is."""
        with self._changed:
            group.holders -= 1
            group.clears_in = max(group.clears_in, clears_in)
            if group.holders > 0:
                return
            if self._groups.get(key) is group:
                del self._groups[key]  # spare slots go back with it
        # Given back from a thread of its own, so the lane (and the run) need not wait for
        # the call; its sessions are closed already. With a rate limit, once the holders'
        # windows are empty. Not a daemon: the process waits for it before it exits.
        release = threading.Timer(group.clears_in, self._release, (group.lease,))
        release.name = "okr-slot-release"
        release.start()

    def _limit(self, key: str, bounds: KeyBounds) -> str | None:
        """The key's limit name, created or resized from the settings once per run."""
        with self._lock:
            if key in self._ready:
                return self._ready[key]
            connection = connection_name(key)
            settings = self._connections.get(connection)
            name = None if settings is None else limit_name(connection, settings)
            if name is not None:
                try:
                    self._read[key] = self._upsert(name, bounds.slots)
                except Exception as exc:  # noqa: BLE001 - the run goes on, bounded locally
                    _log.warning(
                        "Connection %r is bounded in this process only: the Prefect API "
                        "did not create its concurrency limit %s (%s)",
                        connection,
                        name,
                        _brief(exc),
                    )
                    name = None
            self._ready[key] = name
            return name

    def _upsert(self, name: str, size: int) -> _Reading:
        """Create the limit, or resize it to ``size``; another run may create it meanwhile.

        Returns:
            The limit as it stands now (read, or just created).
        """
        with _ONE_CALL:
            return self._upsert_unlocked(name, size)

    def _upsert_unlocked(self, name: str, size: int) -> _Reading:
        for _ in range(2):
            try:
                existing = self._client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                try:
                    self._client.create_global_concurrency_limit(
                        GlobalConcurrencyLimitCreate(name=name, limit=size)
                    )
                    return _Reading(size, 0, True)
                except ObjectAlreadyExists:
                    continue  # another run created it first: read it again
            if existing.limit != size:
                self._client.update_global_concurrency_limit(
                    name, GlobalConcurrencyLimitUpdate(limit=size)
                )
            return _Reading(size, existing.active_slots, existing.active)
        raise RuntimeError(f"the limit {name} could be neither read nor created")

    def _acquire_free(
        self, name: str, wanted: int, reading: _Reading | None = None
    ) -> tuple[UUID, int] | None:
        """Up to ``wanted`` slots of ``name`` under one lease, as many as are free now.

        ``reading`` is the limit as :meth:`_limit` read it; when it is older than
        :data:`FRESH_SECONDS` (or missing) the limit is read again. Should slots have been
        taken since, the server refuses the lease and the lanes ask one slot each.

        Returns:
            The lease and its slots; None when none is free or the API failed (the lane
            then asks for one slot of its own, which waits or reports the failure).
        """
        try:
            with _ONE_CALL:
                if reading is None or reading.age() > FRESH_SECONDS:
                    limit = self._client.read_global_concurrency_limit_by_name(name)
                    reading = _Reading(limit.limit, limit.active_slots, limit.active)
                size = min(wanted, reading.size - reading.active_slots)
                if size < 1 or not reading.active:
                    return None
                response = self._client.increment_concurrency_slots_with_lease(
                    names=[name],
                    slots=size,
                    mode="concurrency",
                    lease_duration=LEASE_SECONDS,
                    holder=self._holder,
                )
        except Exception:  # noqa: BLE001 - taken by another run meanwhile, or an API failure
            return None
        body: dict[str, Any] = response.json()
        if not body.get("limits"):
            return None
        lease = UUID(str(body["lease_id"]))
        self._leases.add(lease)
        return lease, size

    def _acquire(self, key: str, name: str) -> UUID | None:
        """Take one slot of ``name``, waiting while it is full; None if the API failed."""
        while True:
            try:
                with _ONE_CALL:
                    response = self._client.increment_concurrency_slots_with_lease(
                        names=[name],
                        slots=1,
                        mode="concurrency",
                        lease_duration=LEASE_SECONDS,
                        holder=self._holder,
                    )
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code == 423:  # full: wait as long as the server says
                    wait = float(exc.response.headers.get("Retry-After", MAX_POLL_SECONDS))
                    time.sleep(min(max(wait, 0.05), MAX_POLL_SECONDS))
                    continue
                self._give_up(key, name, exc)
                return None
            except Exception as exc:  # noqa: BLE001 - the run goes on, bounded locally
                self._give_up(key, name, exc)
                return None
            body: dict[str, Any] = response.json()
            if not body.get("limits"):
                # The limit was deleted since the run created it: make it again.
                with self._lock:
                    self._ready.pop(key, None)
                if self._limit(key, self.bounds(key)) is None:
                    return None
                continue
            lease = UUID(str(body["lease_id"]))
            self._leases.add(lease)
            return lease

    def _give_up(self, key: str, name: str, exc: Exception) -> None:
        _log.warning(
            "Connection %r is bounded in this process only: no slot of %s from the Prefect "
            "API (%s)",
            connection_name(key),
            name,
            _brief(exc),
        )
        with self._lock:
            self._ready[key] = None

    def _release(self, lease: UUID) -> None:
        self._leases.remove(lease)
        try:
            with _ONE_CALL:
                self._client.release_concurrency_slots_with_lease(lease)
        except Exception as exc:  # noqa: BLE001 - the lease expires on its own
            _log.warning(
                "A connection slot was not given back (%s); it returns when its lease "
                "expires, within %.0f s",
                _brief(exc),
                LEASE_SECONDS,
            )


@dataclass(frozen=True, slots=True)
class _Reading:
    """A limit's size and taken slots as read from the server, and when."""

    size: int
    active_slots: int
    active: bool
    read_at: float = field(default_factory=time.monotonic)

    def age(self) -> float:
        """Seconds since the read."""
        return time.monotonic() - self.read_at


def _holder() -> ConcurrencyLeaseHolder | None:
    """Who holds the slots, as the Prefect UI shows it: this task run or flow run."""
    task_run = TaskRunContext.get()
    if task_run is not None:
        return ConcurrencyLeaseHolder(type="task_run", id=task_run.task_run.id)
    flow_run = FlowRunContext.get()
    if flow_run is not None and flow_run.flow_run is not None:
        return ConcurrencyLeaseHolder(type="flow_run", id=flow_run.flow_run.id)
    return None


def _brief(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return f"{type(exc).__name__}: {exc}"[:200]
