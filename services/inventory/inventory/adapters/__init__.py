"""Inventory adapters layer."""
