"""Helpers shared by the tests: local package channels, indexes and servers."""
