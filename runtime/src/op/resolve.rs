use std::sync::Arc;

use super::spec::OpSpec;
use crate::error::{Result, Site};
use crate::pool::Pool;
use crate::runtime::Runtime;

/// An op with its names looked up: what the runner needs for every attempt.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) spec: OpSpec,
    pub(crate) name: Arc<str>,
    pub(crate) pool: Pool,
    /// The op and pool, for errors and leak reports.
    pub(crate) site_cached: Site,
}

impl Resolved {
    pub(crate) fn new(rt: &Runtime, spec: OpSpec) -> Result<Resolved> {
        let pool = rt.resolve_pool(spec.pool, spec.name)?.clone();
        let name: Arc<str> = Arc::from(spec.name);
        let site_cached = Site {
            op: Some(name.clone()),
            pool: Some(pool.name_arc().clone()),
        };
        Ok(Resolved {
            spec,
            name,
            pool,
            site_cached,
        })
    }

    pub(crate) fn site(&self) -> Site {
        self.site_cached.clone()
    }
}
