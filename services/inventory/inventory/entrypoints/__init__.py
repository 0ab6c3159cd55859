"""Inventory entrypoints layer."""
