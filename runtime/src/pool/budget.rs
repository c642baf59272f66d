use std::fmt;

use serde::Serialize;
use sqlx::PgConnection;

/// What start-up does when the pools ask for more connections than the server allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetMode {
    /// Refuse to start, showing the arithmetic.
    Error,
    /// Log a warning with the arithmetic and start anyway.
    Warn,
    /// Shrink every pool's maximum in proportion so the total fits, and log what changed.
    Scale,
}

crate::settings::fields::choices!(BudgetMode {
    Error = "error",
    Warn = "warn",
    Scale = "scale",
});

/// The server's connection budget against what the pools ask for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetCheck {
    /// The server's `max_connections`.
    pub max_connections: u32,
    /// `superuser_reserved_connections`.
    pub superuser_reserved: u32,
    /// `reserved_connections` (PostgreSQL 16+; 0 before).
    pub reserved: u32,
    /// Connections kept free for other clients (configured headroom).
    pub headroom: u32,
    /// What is left for the application: max - reserved - headroom.
    pub available: u32,
    /// Application instances sharing the server.
    pub instances: u32,
    /// Each pool's maximum, per instance (a replica's pool as `pool.replicaN`).
    pub pools: Vec<(String, u32)>,
    /// Connections the runtime keeps open on its own, per instance: counted, never scaled.
    /// Today the lag monitor's links of a pool with replicas, as `pool.lag_monitor` (one to
    /// each place the primary may be and one to each replica).
    pub fixed: Vec<(String, u32)>,
    /// The replica's `host:port` when this server is a replica that replica pools connect
    /// to; `None` for a pool's own server.
    pub replica: Option<String>,
}

impl BudgetCheck {
    /// Reads the server's limits over `conn`.
    pub async fn read(
        conn: &mut PgConnection,
        pools: Vec<(String, u32)>,
        instances: u32,
        headroom: u32,
    ) -> Result<BudgetCheck, sqlx::Error> {
        let (max, su, reserved): (String, String, Option<String>) = sqlx::query_as(
            "select current_setting('max_connections'), \
                    current_setting('superuser_reserved_connections'), \
                    current_setting('reserved_connections', true)",
        )
        .fetch_one(conn)
        .await?;
        let num = |s: &str| s.trim().parse::<u32>().unwrap_or(0);
        Ok(BudgetCheck::new(
            num(&max),
            num(&su),
            reserved.as_deref().map(num).unwrap_or(0),
            headroom,
            instances,
            pools,
        ))
    }

    /// A check from known figures.
    pub fn new(
        max_connections: u32,
        superuser_reserved: u32,
        reserved: u32,
        headroom: u32,
        instances: u32,
        pools: Vec<(String, u32)>,
    ) -> Self {
        let available = max_connections
            .saturating_sub(superuser_reserved)
            .saturating_sub(reserved)
            .saturating_sub(headroom);
        BudgetCheck {
            max_connections,
            superuser_reserved,
            reserved,
            headroom,
            available,
            instances: instances.max(1),
            pools,
            fixed: Vec::new(),
            replica: None,
        }
    }

    /// The same check with `fixed` connections the runtime keeps on its own (see
    /// [`BudgetCheck::fixed`]).
    pub fn with_fixed(mut self, fixed: Vec<(String, u32)>) -> Self {
        self.fixed = fixed;
        self
    }

    /// Connections one instance keeps on its own (the sum of [`BudgetCheck::fixed`]).
    pub fn fixed_per_instance(&self) -> u32 {
        self.fixed.iter().map(|(_, m)| *m).sum()
    }

    /// Connections one instance asks for: its pools' maxima and its fixed connections.
    pub fn per_instance(&self) -> u32 {
        self.pools_per_instance() + self.fixed_per_instance()
    }

    fn pools_per_instance(&self) -> u32 {
        self.pools.iter().map(|(_, m)| *m).sum()
    }

    /// Connections all instances ask for.
    pub fn requested(&self) -> u32 {
        self.per_instance().saturating_mul(self.instances)
    }

    /// Whether the pools fit.
    pub fn fits(&self) -> bool {
        self.requested() <= self.available
    }

    /// The arithmetic, as shown in errors and reports.
    pub fn arithmetic(&self) -> String {
        let parts: Vec<String> = self
            .pools
            .iter()
            .chain(&self.fixed)
            .map(|(n, m)| format!("{n} {m}"))
            .collect();
        let mut budget = format!("{} max_connections", self.max_connections);
        if self.superuser_reserved > 0 {
            budget += &format!(
                " - {} superuser_reserved_connections",
                self.superuser_reserved
            );
        }
        if self.reserved > 0 {
            budget += &format!(" - {} reserved_connections", self.reserved);
        }
        if self.headroom > 0 {
            budget += &format!(" - {} headroom", self.headroom);
        }
        let on = match &self.replica {
            Some(host) => format!("replica {host}: "),
            None => String::new(),
        };
        format!(
            "{on}pools {} = {} per instance x {} instance{} = {} {} {} available ({})",
            parts.join(" + "),
            self.per_instance(),
            self.instances,
            if self.instances == 1 { "" } else { "s" },
            self.requested(),
            if self.fits() { "<=" } else { ">" },
            self.available,
            budget,
        )
    }

    /// Pool maxima shrunk in proportion so all instances fit (each at least 1), in the
    /// order of [`BudgetCheck::pools`]; the fixed connections are taken off the budget first.
    pub fn scaled(&self) -> Vec<(String, u32)> {
        let per_instance_budget =
            (self.available / self.instances).saturating_sub(self.fixed_per_instance());
        let total = self.pools_per_instance().max(1);
        if self.pools_per_instance() <= per_instance_budget {
            return self.pools.clone();
        }
        let mut scaled: Vec<(String, u32)> = self
            .pools
            .iter()
            .map(|(n, m)| {
                let share = (u64::from(*m) * u64::from(per_instance_budget)) / u64::from(total);
                (n.clone(), (share as u32).max(1))
            })
            .collect();
        // Rounding up to 1 may overshoot a tiny budget: take back from the largest pools.
        while scaled.iter().map(|(_, m)| *m).sum::<u32>() > per_instance_budget.max(1) {
            let Some(largest) = scaled
                .iter_mut()
                .filter(|(_, m)| *m > 1)
                .max_by_key(|(_, m)| *m)
            else {
                break;
            };
            largest.1 -= 1;
        }
        scaled
    }
}

impl fmt::Display for BudgetCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arithmetic())
    }
}

/// One pool's line in a [`SizingReport`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolSizing {
    /// The pool.
    pub name: String,
    /// Its configured maximum.
    pub configured: u32,
    /// Its share of the recommended total.
    pub recommended: u32,
    /// Its share of the server's budget (per instance).
    pub budget_share: u32,
}

/// Pool sizing advice: HikariCP's formula (`cores x 2 + effective spindles`) for the whole
/// application, split across the named pools in proportion to their configured maxima, next
/// to what the server's budget allows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SizingReport {
    /// Database server cores the formula used, when known.
    pub server_cores: Option<u32>,
    /// Effective spindles (0 when the working set is cached, about the disk count otherwise).
    pub effective_spindles: u32,
    /// `cores x 2 + spindles`, for all instances together.
    pub recommended_total: Option<u32>,
    /// The budget check it is compared with.
    pub budget: BudgetCheck,
    /// Per pool.
    pub pools: Vec<PoolSizing>,
}

impl SizingReport {
    /// Builds the report.
    pub fn new(budget: BudgetCheck, server_cores: Option<u32>, effective_spindles: u32) -> Self {
        let recommended_total = server_cores.map(|c| c * 2 + effective_spindles);
        let per_instance = budget.per_instance().max(1);
        // The fixed connections count in what the recommendation is shared over.
        let instances = budget.instances.max(1);
        let scaled = budget.scaled();
        let pools = budget
            .pools
            .iter()
            .zip(scaled)
            .map(|((name, max), (_, share))| {
                let recommended = recommended_total
                    .map(|t| {
                        let per = u64::from(t) * u64::from(*max)
                            / (u64::from(per_instance) * u64::from(instances));
                        (per as u32).max(1)
                    })
                    .unwrap_or(*max);
                PoolSizing {
                    name: name.clone(),
                    configured: *max,
                    recommended,
                    budget_share: share,
                }
            })
            .collect();
        SizingReport {
            server_cores,
            effective_spindles,
            recommended_total,
            budget,
            pools,
        }
    }
}

impl fmt::Display for SizingReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "connection budget: {}", self.budget.arithmetic())?;
        match (self.server_cores, self.recommended_total) {
            (Some(cores), Some(total)) => writeln!(
                f,
                "HikariCP formula: {cores} cores x 2 + {} effective spindles = {total} connections \
                 for all {} instance(s); more connections than that queue inside the server",
                self.effective_spindles, self.budget.instances
            )?,
            _ => writeln!(
                f,
                "HikariCP formula: server cores unknown; set budget.server_cores for advice"
            )?,
        }
        writeln!(
            f,
            "{:<16} {:>10} {:>12} {:>13}",
            "pool", "configured", "recommended", "budget share"
        )?;
        for p in &self.pools {
            writeln!(
                f,
                "{:<16} {:>10} {:>12} {:>13}",
                p.name, p.configured, p.recommended, p.budget_share
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed000() -> Vec<(String, u32)> {
        vec![
            ("http".into(), 150),
            ("ws".into(), 30),
            ("background".into(), 20),
        ]
    }

    #[test]
    fn railway_budget_from_seed_004() {
        let b = BudgetCheck::new(20, 2, 0, 0, 1, vec![("http".into(), 18)]);
        assert_eq!(b.available, 18);
        assert!(b.fits());
        assert_eq!(
            b.arithmetic(),
            "pools http 18 = 18 per instance x 1 instance = 18 <= 18 available \
             (20 max_connections - 2 superuser_reserved_connections)"
        );
        let over = BudgetCheck::new(20, 2, 0, 0, 1, vec![("http".into(), 19)]);
        assert!(!over.fits());
        assert!(over.arithmetic().contains("19 > 18 available"));
    }

    #[test]
    fn instances_multiply() {
        let b = BudgetCheck::new(100, 3, 0, 0, 2, seed000());
        assert_eq!(b.requested(), 400);
        assert!(b.arithmetic().starts_with(
            "pools http 150 + ws 30 + background 20 = 200 per instance x 2 instances = 400 > 97"
        ));
    }

    #[test]
    fn scaling_keeps_proportions_and_fits() {
        let b = BudgetCheck::new(100, 3, 0, 0, 1, seed000());
        let s = b.scaled();
        assert_eq!(
            s,
            vec![
                ("http".into(), 72),
                ("ws".into(), 14),
                ("background".into(), 9)
            ]
        );
        assert!(s.iter().map(|(_, m)| m).sum::<u32>() <= 97);
        let tiny = BudgetCheck::new(5, 3, 0, 0, 1, seed000());
        let s = tiny.scaled();
        assert!(s.iter().all(|(_, m)| *m >= 1));
        assert_eq!(s.iter().map(|(_, m)| m).sum::<u32>(), 3);
    }

    #[test]
    fn fixed_connections_count_and_are_not_scaled() {
        let b = BudgetCheck::new(20, 2, 0, 0, 1, vec![("main.replica1".into(), 18)])
            .with_fixed(vec![("main.lag_monitor".into(), 1)]);
        assert!(!b.fits());
        assert_eq!(
            b.arithmetic(),
            "pools main.replica1 18 + main.lag_monitor 1 = 19 per instance x 1 instance = 19 > \
             18 available (20 max_connections - 2 superuser_reserved_connections)"
        );
        assert_eq!(b.scaled(), vec![("main.replica1".into(), 17)]);
    }

    #[test]
    fn sizing_report_uses_hikari_formula() {
        let b = BudgetCheck::new(100, 3, 0, 0, 1, seed000());
        let r = SizingReport::new(b, Some(8), 1);
        assert_eq!(r.recommended_total, Some(17));
        let http = &r.pools[0];
        assert_eq!(
            (http.configured, http.recommended, http.budget_share),
            (150, 12, 72)
        );
        let text = r.to_string();
        assert!(
            text.contains("8 cores x 2 + 1 effective spindles = 17"),
            "{text}"
        );
    }
}
