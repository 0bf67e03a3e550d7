"""PostgreSQL index: engine, tables, writes and reads."""
