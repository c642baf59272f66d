//! Metric names and label keys. The connection and operation metrics use OpenTelemetry's
//! database client names, so dashboards built for them work unchanged; the policy metrics,
//! which OpenTelemetry does not define, live under `sqlx_resilience.`.
//!
//! Exporters that do not allow dots rewrite them (Prometheus: `db_client_connection_count`).

/// Gauge: open connections of a pool, by [`STATE`] (`idle` or `used`).
pub const CONNECTION_COUNT: &str = "db.client.connection.count";
/// Gauge: a pool's maximum connections.
pub const CONNECTION_MAX: &str = "db.client.connection.max";
/// Gauge: connections a pool keeps open when idle (its `min`).
pub const CONNECTION_IDLE_MIN: &str = "db.client.connection.idle.min";
/// Gauge: callers waiting for a connection.
pub const CONNECTION_PENDING_REQUESTS: &str = "db.client.connection.pending_requests";
/// Counter: acquires that gave up waiting (the pool's acquire timeout).
pub const CONNECTION_TIMEOUTS: &str = "db.client.connection.timeouts";
/// Histogram (seconds): how long an acquire that had to open a new connection waited for it
/// (connect, authentication, session set-up).
pub const CONNECTION_CREATE_TIME: &str = "db.client.connection.create_time";
/// Histogram (seconds): how long callers waited for a connection.
pub const CONNECTION_WAIT_TIME: &str = "db.client.connection.wait_time";
/// Histogram (seconds): how long callers held a connection.
pub const CONNECTION_USE_TIME: &str = "db.client.connection.use_time";
/// Histogram (seconds): the whole call of an op (attempts, waits, retry delays), by [`OP`],
/// [`POOL`] and [`OUTCOME`].
pub const OPERATION_DURATION: &str = "db.client.operation.duration";

/// Gauge: a breaker's state as a number: 0 closed, 1 half-open, 2 open, 3 forced open,
/// 4 disabled, 5 metrics only (the `state` label carries the name too).
pub const BREAKER_STATE: &str = "sqlx_resilience.breaker.state";
/// Counter: a breaker's state transitions.
pub const BREAKER_TRANSITIONS: &str = "sqlx_resilience.breaker.transitions";
/// Counter: calls a breaker rejected.
pub const BREAKER_REJECTIONS: &str = "sqlx_resilience.breaker.rejections";
/// Counter: retries a retry policy granted, by [`KIND`] of the failure that caused them.
pub const RETRIES: &str = "sqlx_resilience.retry.retries";
/// Counter: calls a rate limiter rejected.
pub const LIMITER_REJECTIONS: &str = "sqlx_resilience.limiter.rejections";
/// Counter: calls a bulkhead rejected, by [`REASON`] (`queue_full` or `wait_timed_out`).
pub const BULKHEAD_REJECTIONS: &str = "sqlx_resilience.bulkhead.rejections";
/// Gauge: calls running inside a bulkhead.
pub const BULKHEAD_RUNNING: &str = "sqlx_resilience.bulkhead.running";
/// Gauge: calls queued at a bulkhead.
pub const BULKHEAD_QUEUED: &str = "sqlx_resilience.bulkhead.queued";
/// Gauge: 1 for the host a multi-host pool uses now, 0 for its other hosts (labels: pool,
/// `server.address`, `server.port`).
pub const HOST_CURRENT: &str = "sqlx_resilience.host.current";
/// Gauge: 1 when a host was last found a primary (accepting writes), else 0 (same labels).
pub const HOST_PRIMARY: &str = "sqlx_resilience.host.primary";
/// Gauge: 1 while a host's health watch finds it unreachable, else 0 (same labels).
pub const HOST_DOWN: &str = "sqlx_resilience.host.down";
/// Counter: times discovery asked a host what it is, by outcome (`ok`, `unreachable`).
pub const HOST_CHECKS: &str = "sqlx_resilience.host.checks";
/// Counter: times the pool could not open a connection to a host it used (refused, reset,
/// no answer in time; not a live server's refusal), same labels as [`HOST_CURRENT`].
pub const HOST_FAILED_CONNECTS: &str = "sqlx_resilience.host.failed_connects";
/// Gauge: the state of a host's own breaker, numbered as [`BREAKER_STATE`] (0 closed,
/// 1 half-open, 2 open; same labels as [`HOST_CURRENT`]).
pub const HOST_BREAKER: &str = "sqlx_resilience.host.breaker";
/// Counter: times a multi-host pool moved to another host after a failure.
pub const POOL_FAILOVERS: &str = "sqlx_resilience.pool.failovers";

/// Gauge (seconds): how far a read replica may be behind its primary, by [`POOL`],
/// [`SERVER_ADDRESS`] and [`SERVER_PORT`]; not published while unknown.
pub const REPLICA_LAG: &str = "sqlx_resilience.replica.lag";
/// Gauge: 1 while a read replica serves reads (up, within `max_lag`), else 0.
pub const REPLICA_SERVING: &str = "sqlx_resilience.replica.serving";
/// Counter: read-only ops that ended well on a replica.
pub const REPLICA_READS: &str = "sqlx_resilience.replica.reads";
/// Counter: read-only ops of a pool with replicas that ended well on the primary.
pub const REPLICA_PRIMARY_READS: &str = "sqlx_resilience.replica.primary_reads";
/// Counter: ops a replica failed in a way a primary would not, run again on the primary.
pub const REPLICA_REROUTED: &str = "sqlx_resilience.replica.rerouted";
/// Counter: rounds of asking Patroni's REST API for a pool's replicas, by [`POOL`] and
/// [`OUTCOME`] (`ok`, or `failed` when no API answered).
pub const REPLICA_DISCOVERY: &str = "sqlx_resilience.replica.discovery";
/// Counter: calls of a cached op answered without running it, by [`OP`].
pub const CACHE_HITS: &str = "sqlx_resilience.cache.hits";
/// Counter: calls of a cached op that ran it, by [`OP`].
pub const CACHE_MISSES: &str = "sqlx_resilience.cache.misses";
/// Gauge: a cached op's hits over its calls since start (0 to 1), by [`OP`].
pub const CACHE_HIT_RATIO: &str = "sqlx_resilience.cache.hit_ratio";
/// Gauge: results held by the result cache.
pub const CACHE_ENTRIES: &str = "sqlx_resilience.cache.entries";
/// Gauge: background writes queued (not yet running), by [`POOL`].
pub const BACKGROUND_DEPTH: &str = "sqlx_resilience.background.depth";
/// Gauge (seconds): how long the oldest queued or running background write has waited, by
/// [`POOL`].
pub const BACKGROUND_OLDEST_AGE: &str = "sqlx_resilience.background.oldest_age";
/// Counter: background writes made, by [`POOL`].
pub const BACKGROUND_WRITTEN: &str = "sqlx_resilience.background.written";
/// Counter: background writes not made, by [`POOL`] and [`REASON`] (`rejected`,
/// `dropped_oldest`, `failed`, `shutdown_deadline`).
pub const BACKGROUND_DROPPED: &str = "sqlx_resilience.background.dropped";

/// Label: the pool's declared name.
pub const POOL: &str = "pool";
/// Label: `idle` or `used`, on [`CONNECTION_COUNT`].
pub const STATE: &str = "state";
/// Label: the op's static name.
pub const OP: &str = "op";
/// Label: `ok`, or the [`FailureKind`](crate::FailureKind) name of the failure.
pub const OUTCOME: &str = "outcome";
/// Label: a breaker's declared name.
pub const BREAKER: &str = "breaker";
/// Label: a retry policy's declared name.
pub const POLICY: &str = "policy";
/// Label: a [`FailureKind`](crate::FailureKind) name.
pub const KIND: &str = "kind";
/// Label: a rate limiter's declared name.
pub const LIMITER: &str = "limiter";
/// Label: a bulkhead's declared name.
pub const BULKHEAD: &str = "bulkhead";
/// Label: why a bulkhead rejected a call.
pub const REASON: &str = "reason";
/// Label: a host's name or address (OpenTelemetry's `server.address`).
pub const SERVER_ADDRESS: &str = "server.address";
/// Label: a host's port (OpenTelemetry's `server.port`).
pub const SERVER_PORT: &str = "server.port";

/// Every metric name, for exporters that need the list (histogram buckets, allow-lists).
pub const ALL: [&str; 38] = [
    CONNECTION_COUNT,
    CONNECTION_MAX,
    CONNECTION_IDLE_MIN,
    CONNECTION_PENDING_REQUESTS,
    CONNECTION_TIMEOUTS,
    CONNECTION_CREATE_TIME,
    CONNECTION_WAIT_TIME,
    CONNECTION_USE_TIME,
    OPERATION_DURATION,
    BREAKER_STATE,
    BREAKER_TRANSITIONS,
    BREAKER_REJECTIONS,
    RETRIES,
    LIMITER_REJECTIONS,
    BULKHEAD_REJECTIONS,
    BULKHEAD_RUNNING,
    BULKHEAD_QUEUED,
    HOST_CURRENT,
    HOST_PRIMARY,
    HOST_DOWN,
    HOST_CHECKS,
    HOST_FAILED_CONNECTS,
    HOST_BREAKER,
    POOL_FAILOVERS,
    REPLICA_LAG,
    REPLICA_SERVING,
    REPLICA_READS,
    REPLICA_PRIMARY_READS,
    REPLICA_REROUTED,
    REPLICA_DISCOVERY,
    CACHE_HITS,
    CACHE_MISSES,
    CACHE_HIT_RATIO,
    CACHE_ENTRIES,
    BACKGROUND_DEPTH,
    BACKGROUND_OLDEST_AGE,
    BACKGROUND_WRITTEN,
    BACKGROUND_DROPPED,
];

/// The histograms (all in seconds).
pub const HISTOGRAMS: [&str; 4] = [
    CONNECTION_CREATE_TIME,
    CONNECTION_WAIT_TIME,
    CONNECTION_USE_TIME,
    OPERATION_DURATION,
];

/// Histogram bucket bounds in seconds that suit database calls: 0.5 ms to 10 s.
pub const BUCKETS_SECONDS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0,
];
