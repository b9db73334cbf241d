"""One adapter per database driver: every use of a driver's (or SQLAlchemy's adapter's) private
attributes is in ``sqlite.py`` or ``postgres.py``, checked by ``check()`` when a store opens, under the
upper version bounds in ``pyproject.toml``. Their errors are translated in ``store/failures.py``."""
