"""Inventory service layer layer."""
