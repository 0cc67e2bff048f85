"""Lifecycle events, structured logs (and later metrics and alerts) built on them."""
