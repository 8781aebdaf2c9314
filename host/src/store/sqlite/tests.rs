//! Tests of the SQLite store against a real database file.
