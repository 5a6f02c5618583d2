"""Strata: enterprise patterns for multi-tenant PostgreSQL, and the CLI that manages them."""

__version__ = "0.1.0"
