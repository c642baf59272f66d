//! The units and help text of every metric, given to the recorder once.

use super::names;

/// Describes the metrics (units and help text) to the current recorder.
pub(super) fn describe() {
    {
        use metrics::Unit;
        metrics::describe_gauge!(
            names::CONNECTION_COUNT,
            "open connections by state (idle, used)"
        );
        metrics::describe_gauge!(names::CONNECTION_MAX, "maximum connections of the pool");
        metrics::describe_gauge!(
            names::CONNECTION_IDLE_MIN,
            "connections kept open when idle"
        );
        metrics::describe_gauge!(
            names::CONNECTION_PENDING_REQUESTS,
            "callers waiting for a connection"
        );
        metrics::describe_counter!(names::CONNECTION_TIMEOUTS, "acquires that gave up waiting");
        metrics::describe_histogram!(
            names::CONNECTION_CREATE_TIME,
            Unit::Seconds,
            "wait of acquires that opened a new connection"
        );
        metrics::describe_histogram!(
            names::CONNECTION_WAIT_TIME,
            Unit::Seconds,
            "time callers waited for a connection"
        );
        metrics::describe_histogram!(
            names::CONNECTION_USE_TIME,
            Unit::Seconds,
            "time callers held a connection"
        );
        metrics::describe_histogram!(
            names::OPERATION_DURATION,
            Unit::Seconds,
            "duration of whole op calls"
        );
        metrics::describe_gauge!(
            names::BREAKER_STATE,
            "0 closed, 1 half-open, 2 open, 3 forced open, 4 disabled, 5 metrics only"
        );
        metrics::describe_counter!(names::BREAKER_TRANSITIONS, "breaker state transitions");
        metrics::describe_counter!(
            names::BREAKER_REJECTIONS,
            "calls rejected by an open breaker"
        );
        metrics::describe_counter!(names::RETRIES, "retries granted, by failure kind");
        metrics::describe_counter!(
            names::LIMITER_REJECTIONS,
            "calls rejected by a rate limiter"
        );
        metrics::describe_counter!(names::BULKHEAD_REJECTIONS, "calls rejected by a bulkhead");
        metrics::describe_gauge!(names::BULKHEAD_RUNNING, "calls running inside a bulkhead");
        metrics::describe_gauge!(names::BULKHEAD_QUEUED, "calls queued at a bulkhead");
        metrics::describe_counter!(names::CACHE_HITS, "cached op calls answered without it");
        metrics::describe_counter!(names::CACHE_MISSES, "cached op calls that ran it");
        metrics::describe_gauge!(names::CACHE_HIT_RATIO, "a cached op's hits over its calls");
        metrics::describe_gauge!(names::CACHE_ENTRIES, "results held by the result cache");
        metrics::describe_gauge!(names::BACKGROUND_DEPTH, "background writes queued");
        metrics::describe_gauge!(
            names::BACKGROUND_OLDEST_AGE,
            "age of the oldest background write queued or running"
        );
        metrics::describe_counter!(names::BACKGROUND_WRITTEN, "background writes made");
        metrics::describe_counter!(names::BACKGROUND_DROPPED, "background writes not made");
    }
}
