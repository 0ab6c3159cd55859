"""Use cases of the notifications context: fan-out, recipients, deliveries, escalation, digests."""
