"""Alembic environment: runs migrations on the connection the app hands over."""

from alembic import context

from aiedit.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("aiedit migrations run through aiedit.store.db.Database.migrate()")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
