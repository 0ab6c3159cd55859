"""Notifications settings (environment): channels, delivery retries, alert windows, escalation, digest."""

from __future__ import annotations

from pathlib import Path

from kkmp_shared.settings import ServiceSettings
from pydantic import Field


class NotificationsSettings(ServiceSettings):
    service_name: str = "notifications"
    port: int = 8005
    # A detection scan announces its stalls at once, hundreds on the alerts queue: they are routed in
    # one batch (up to 256, half the prefetch) when the consumer lingers until the burst is in.
    prefetch: int = 512
    consumer_linger_max_ms: float = Field(default=250, ge=0, le=5000)

    # Links in messages point at the portal's pages (/koperasi/{id}, /kebutuhan/{id}).
    portal_url: str = "http://127.0.0.1:8000"
    # Commodity and kelurahan names for messages (kkmp_shared.refdata by default).
    reference_data_dir: Path | None = None

    # Email over SMTP. Without SMTP_HOST the email channel is off: users get the inbox only, and an
    # email subscription's deliveries are recorded as failed with the reason, never silently dropped.
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "KKMP Surabaya <notifikasi@kkmp.surabaya.go.id>"
    smtp_username: str | None = None
    smtp_password: str | None = None
    # None: use STARTTLS when the server offers it.
    smtp_starttls: bool | None = None
    smtp_use_tls: bool = False
    smtp_timeout_s: float = Field(default=10.0, gt=0)

    # Webhooks: targets on loopback, private or link-local networks are refused unless the operator
    # allows them (tests do, to reach their local receiver; an on-premise gateway may need it too).
    allow_internal_webhooks: bool = False
    webhook_timeout_s: float = Field(default=5.0, gt=0)

    # Background delivery workers (email, webhook): each attempt is a row in `delivery_attempts`.
    delivery_concurrency: int = Field(default=256, ge=1, le=1024)
    # At most this many attempts in flight to one target, so one slow receiver cannot take every slot;
    # up to 4 times this many are handed to the worker when a burst commits. Why 64: see
    # docs/decisions/0005-notifications-push-deliveries.md.
    delivery_per_target: int = Field(default=64, ge=1)
    # Attempts are recorded once the sends in flight are done, or after this long: a burst's sends
    # do not share this process's CPU with its recording.
    delivery_record_delay_ms: float = Field(default=250, ge=0, le=5000)
    delivery_max_attempts: int = Field(default=6, ge=1, le=50)
    delivery_backoff_base_s: float = Field(default=2.0, gt=0)
    delivery_backoff_max_s: float = Field(default=900.0, gt=0)
    delivery_poll_interval_s: float = Field(default=1.0, gt=0)
    # A claimed delivery whose worker died is taken up again after this lease.
    delivery_lease_s: float = Field(default=120.0, gt=0)

    # The same condition (event type, cooperative, commodity) is not announced again within this window.
    repeat_window_s: int = Field(default=24 * 3600, ge=0)
    # A need.submitted still `open` after this long is escalated to the supervisors in scope.
    need_escalation_after_s: int = Field(default=48 * 3600, ge=1)
    # Daily digests go out at this hour, Surabaya time (WIB, UTC+7).
    digest_hour_wib: int = Field(default=7, ge=0, le=23)
    # How often the escalation and digest jobs look for due work.
    scheduler_interval_s: float = Field(default=60.0, gt=0)
    # How many pending items a digest lists before "dan N lainnya".
    digest_max_lines: int = Field(default=20, ge=1)
