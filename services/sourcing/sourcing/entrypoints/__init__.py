"""Sourcing's entrypoints: HTTP routes and event subscriptions."""
