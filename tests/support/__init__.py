"""Helpers the tests share, one module per thing they help with; conftest files
keep only fixtures and import from here."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
