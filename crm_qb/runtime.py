"""The per-application objects every request and job needs: settings, the secret box, Redis and its keys, the
queue port, ingress's committer (``webhooks.groupcommit``) and (built on first use) the QBO services.

They live on ``app.extensions`` (built by the app factory), never in module globals, so two apps in one process
(tests do this) never share state. Building them opens no connection; Redis connects on first use. This is the
edge: views, jobs and CLI commands take what they need from here and pass it into the domain
(``sync_services``); the domain itself never calls ``runtime()``.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from flask import Flask, current_app
from redis import Redis

from crm_qb.backend_cpu import BackendCpu
from crm_qb.config import Settings
from crm_qb.crm.hubspot.config import HubSpotConfig
from crm_qb.crypto import SecretBox
from crm_qb.db import db
from crm_qb.jobqueue import JobQueue
from crm_qb.keys import RedisKeys
from crm_qb.models import EventSource
from crm_qb.qbo.services import QboServices, build_qbo_services
from crm_qb.sync.pacing import LivePacer
from crm_qb.sync.pipeline.events import Notice
from crm_qb.sync.pipeline.mirrorproc import MirrorChild, MirrorStarter, Task
from crm_qb.sync.services import SyncServices

EXTENSION_KEY = "crm_qb"
IN_MEMORY_SQLITE = ("sqlite://", "sqlite:///:memory:", "sqlite+pysqlite://", "sqlite+pysqlite:///:memory:")
Wake = Callable[[EventSource, set[str]], int]


class IngressStore(Protocol):
    """How ingress stores a webhook's notices: committed (with the process's concurrent webhooks), then woken."""

    def store(self, source: EventSource, notices: Sequence[Notice], connection_id: int | None,
              wake: Wake) -> list[Notice]:
        """Store and commit ``notices``, then ``wake`` their drains; the new pending ones."""
        ...


@dataclass(frozen=True)
class Runtime:
    """Settings and long-lived clients of one app."""

    settings: Settings
    secrets: SecretBox
    redis: Redis
    keys: RedisKeys
    jobs: JobQueue
    ingress: IngressStore
    _qbo: list[QboServices] = field(default_factory=list, repr=False, compare=False)
    _backend_cpu: list[BackendCpu] = field(default_factory=list, repr=False, compare=False)
    _bulk_pacer: list[LivePacer] = field(default_factory=list, repr=False, compare=False)

    def qbo(self) -> QboServices:
        """The app's QBO services, built on first use; ValueError when QBO's addresses are not all known."""
        if not self._qbo:
            self._qbo.append(build_qbo_services(self.settings, self.secrets, self.redis, self.keys))
        return self._qbo[0]

    def backend_cpu(self) -> BackendCpu:
        """The CPU of this process's local database backends (crm_qb.backend_cpu), watched from the first call on
        (in the app's context, as every job runs): only a process that runs bulk work asks, so a live worker's
        check-outs carry no listener."""
        if not self._backend_cpu:
            self._backend_cpu.append(BackendCpu(db.engine))
        return self._backend_cpu[0]

    def bulk_pacer(self, build: Callable[[], LivePacer]) -> LivePacer:
        """This process's pacer of bulk work (crm_qb.sync.pacing), made by ``build`` on first use. One per process,
        as the share of a core is the process's: the rest that a bulk job's last items owe when it ends is taken
        by the process's next bulk job, if live work is still about (a drain of a first sync's backlog ends every
        few seconds)."""
        if not self._bulk_pacer:
            self._bulk_pacer.append(build())
        return self._bulk_pacer[0]

    def sync_services(self) -> SyncServices:
        """What the domain needs of the outside world, for one job or request."""
        return SyncServices(self.qbo, self.secrets, self.redis, self.keys, self.jobs, self.settings.retry_schedule,
                            self.hubspot, mirror_process=mirror_starter(self.settings))

    @property
    def hubspot(self) -> HubSpotConfig:
        """The HubSpot app settings (CRM_QB_HUBSPOT_*) as the connector takes them."""
        return hubspot_config(self.settings)


def hubspot_config(settings: Settings) -> HubSpotConfig:
    """The HubSpot part of ``settings``."""
    s = settings
    return HubSpotConfig(api_base=s.hubspot_api_base, app_base=s.hubspot_app_base, client_id=s.hubspot_client_id,
                         client_secret=s.hubspot_client_secret, app_id=s.hubspot_app_id,
                         redirect_uri=s.hubspot_redirect_uri, burst_per_10s=s.hubspot_rate_per_10s,
                         daily_limit=s.hubspot_daily_limit, search_per_second=s.hubspot_search_per_second)


def mirror_starter(settings: Settings) -> MirrorStarter | None:
    """How a plain backfill starts its transaction process (``crm_qb.sync.pipeline.mirrorproc``): ``python -m
    workers.mirror_child`` with these settings; None when the database is not shared between processes (SQLite
    in memory) or the setting turns it off (CRM_QB_BACKFILL_PROCESS=0): the walk then runs on the backfill's
    threads."""
    if not settings.backfill_process or settings.database_url in IN_MEMORY_SQLITE:
        return None

    def start(task: Task) -> MirrorChild:
        return MirrorChild.start([sys.executable, "-m", "workers.mirror_child"], pickle.dumps((settings, task)))

    return start


def build_runtime(settings: Settings, job_queue: Callable[[Redis, RedisKeys], JobQueue],
                  ingress: Callable[[], IngressStore]) -> Runtime:
    """Create the runtime objects for ``settings``, with ``job_queue`` building the queue port and ``ingress``
    the webhooks' committer (no I/O)."""
    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5,
                           health_check_interval=30)
    keys = RedisKeys(settings.queue_prefix)
    return Runtime(settings=settings, secrets=SecretBox(settings.encryption_keys), redis=redis, keys=keys,
                   jobs=job_queue(redis, keys), ingress=ingress())


def runtime(app: Flask | None = None) -> Runtime:
    """The runtime of ``app`` (default: the current app)."""
    found: Runtime = (app or current_app).extensions[EXTENSION_KEY]
    return found
