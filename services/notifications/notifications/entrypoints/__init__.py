"""Entrypoints: HTTP routes, event subscriptions and the background jobs."""
