"""The state store: SQLAlchemy Core tables, queries and alembic migrations."""
