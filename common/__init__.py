"""Shared by the API and the workers: configuration, store, models, naming."""
