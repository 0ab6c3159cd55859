"""Reliable messaging: transactional outbox + relay for publishing, inbox consumer runner for consuming."""
