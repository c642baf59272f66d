//! Integration tests against real PostgreSQL from the test kit.
