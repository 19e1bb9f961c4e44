"""Ash: hosted, sandboxed AI agent sessions.

Kept import-free on purpose: ``ash.runtime`` runs inside sandboxes without Django or Celery.
"""

__version__ = "0.1.0"
