"""Persistence: SQLAlchemy models and database set-up, blob storage, retention."""
