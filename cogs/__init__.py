"""Cog packages: each has `setup()` in `__init__.py` and its Discord layer in `cog.py`."""
