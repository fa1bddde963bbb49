"""Hooks for the whole suite."""

from tests.skip_notice import pytest_terminal_summary, pytest_unconfigure  # noqa: F401
