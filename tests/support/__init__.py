"""Helpers shared by the integration tests: run services in-process, publish, collect."""
