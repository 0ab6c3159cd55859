"""Sourcing's adapters: tables and reference data."""
