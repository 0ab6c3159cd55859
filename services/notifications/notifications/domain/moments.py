"""Moments as the service stores them: aware, in UTC."""

from __future__ import annotations

from kkmp_shared.timeutil import as_utc

utc = as_utc  # this service's name for it
