"""Shared core of elevate: settings, tables, engine, contracts and pure policy logic.

Both the API and the worker import this package; it never imports `api/`.
"""
