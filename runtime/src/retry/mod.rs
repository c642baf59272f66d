//! Retry policies, backoff schedules and the retry budget.
