//! PostgreSQL statistics.
