"""Sourcing's use cases: handlers shared by the HTTP routes and the event consumers."""
