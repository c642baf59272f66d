//! Real PostgreSQL for tests, examples and drills: throwaway clusters, a database per test,
//! server controls and a fault-injecting TCP proxy.
