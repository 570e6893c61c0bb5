"""Alembic's environment for the case database (run by ``cases.database.migrate``).

The connection is handed over by the caller (``config.attributes["connection"]``):
the URL, with its password, never sits in an ini file.
"""

from alembic import context

from cases.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
