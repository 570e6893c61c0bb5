"""Cases: the citizen's request, tracked from registration to resolution.

One home for the feature (docs/cases.md):

* ``reference``: the short reference number with its check digit (pure);
* ``model``: the case, its status state machine and its audit trail (pure:
  every transition one function, no I/O);
* ``schema`` and ``migrations/``: the tables, versioned with Alembic;
* ``store``: the SQL side (SQLite or PostgreSQL through SQLAlchemy).

Cases sit beside ``queues`` in the middle layer: they import the shared base
(``core``) and ``metrics`` only, and are wired by ``app``.
"""
