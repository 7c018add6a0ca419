from resonanz.store.db import Database

__all__ = ["Database"]
