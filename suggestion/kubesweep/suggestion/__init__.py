"""The suggestion service."""
