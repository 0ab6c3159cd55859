"""Adapters: tables, channel senders (SMTP, HTTP) and the name lookups templates need."""
