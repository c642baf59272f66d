//! Named rate limiters.
