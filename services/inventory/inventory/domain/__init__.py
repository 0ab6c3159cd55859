"""Inventory domain layer."""
