//! The start-up connection budget check: each server's `max_connections` against the pools
//! that connect to it, the pools' own servers and each replica's, and the connections the
//! replicas' lag monitor keeps there (see docs/SCALING.md).

use std::collections::BTreeMap;

use sqlx::{Connection, PgConnection};

use crate::config::RuntimeConfig;
use crate::error::{Error, Result, Site};
use crate::pool::replica::patroni_members;
use crate::pool::{BudgetCheck, BudgetMode, PoolConfig, Pooler, Providers, Startup};
use crate::secret::DatabaseUrl;

/// What a member of a server's budget is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// A declared pool (sized by `max`).
    Pool,
    /// One replica's pool of a declared pool (sized by `replica_max`, always lazy).
    Replica,
    /// The lag monitor's links of a pool with replicas: fixed, never scaled, and opened in
    /// the background (a server it cannot reach does not stop start-up).
    LagMonitor,
}

/// One pool counted against a server: a declared pool, one replica's pool of it, or its lag
/// monitor's links.
struct Member {
    /// The declared pool whose settings it comes from.
    pool: String,
    /// Its name in the arithmetic: the pool's, `pool.replicaN` or `pool.lag_monitor`.
    shown: String,
    max: u32,
    kind: Kind,
}

impl Member {
    /// The lag monitor of pool `name` keeping `links` connections to one server.
    fn lag_monitor(name: &str, links: u32) -> Member {
        Member {
            pool: name.to_owned(),
            shown: format!("{name}.lag_monitor"),
            max: links,
            kind: Kind::LagMonitor,
        }
    }
}

/// The pools that connect to one server (one URL, redacted).
struct Target {
    url: DatabaseUrl,
    members: Vec<Member>,
}

/// Groups the pools, and each replica's pool, by the server they connect to. Replicas that
/// come from Patroni's REST API are the members it lists now (none when it does not answer:
/// they are not known yet, and their pools are lazy).
async fn targets(config: &RuntimeConfig) -> Result<BTreeMap<String, Target>> {
    let mut servers: BTreeMap<String, Target> = BTreeMap::new();
    let mut add = |url: DatabaseUrl, member: Member| {
        servers
            .entry(url.redacted())
            .or_insert_with(|| Target {
                url,
                members: Vec::new(),
            })
            .members
            .push(member);
    };
    for (name, pool) in &config.pools {
        let Some(url) = pool.url.clone().or_else(|| config.settings.url.clone()) else {
            return Err(Error::config(
                format!("pools.{name}.url"),
                "(not set)",
                "a postgres:// URL: set url, PREFIX__URL or DATABASE_URL",
                "code",
            ));
        };
        // The replicas' pools, built as `Replicas::build` builds them: one per replica URL,
        // one per host of a multi-host URL for `replicas = "hosts"`, one per member Patroni
        // lists.
        let replica_urls: Vec<DatabaseUrl> = match &pool.replicas {
            None => Vec::new(),
            Some(r) if r.from_patroni() => {
                let base = url
                    .each_host_options(&format!("pools.{name}.url"))?
                    .swap_remove(0);
                match patroni_members(r.patroni(), pool.connect_timeout).await {
                    Ok(members) => members
                        .into_iter()
                        .map(|(host, port)| {
                            DatabaseUrl::from_options(base.clone().host(&host).port(port))
                        })
                        .collect(),
                    Err(why) => {
                        tracing::warn!(pool = %name, error = %why, "Patroni's REST API did not answer at start-up; its members' replica pools are not in the connection budget check");
                        Vec::new()
                    }
                }
            }
            Some(r) if r.from_hosts() => match url.host_list(&format!("pools.{name}.url"))? {
                Some(_) => url
                    .each_host_options(&format!("pools.{name}.url"))?
                    .into_iter()
                    .map(DatabaseUrl::from_options)
                    .collect(),
                None => Vec::new(),
            },
            Some(r) => r.urls().to_vec(),
        };
        // The lag monitor keeps one link to each place the primary may be and one to each
        // replica (`pool::replica::monitor`): one on the pool's server and one on each
        // replica's. With `replicas = "hosts"` every host is both a place the primary may be
        // and a replica: two on each.
        // So are the members Patroni lists when the pool's URL names the cluster's hosts.
        let multi_host = url.host_list(&format!("pools.{name}.url"))?.is_some();
        let monitor_links = match &pool.replicas {
            Some(r) if r.from_hosts() || (r.from_patroni() && multi_host) => 2,
            _ => 1,
        };
        let monitored = !replica_urls.is_empty();
        for (i, replica) in replica_urls.into_iter().enumerate() {
            add(
                replica.clone(),
                Member {
                    pool: name.clone(),
                    shown: format!("{name}.replica{}", i + 1),
                    max: pool.replica_max.unwrap_or(pool.max),
                    kind: Kind::Replica,
                },
            );
            add(replica, Member::lag_monitor(name, monitor_links));
        }
        if monitored {
            add(url.clone(), Member::lag_monitor(name, monitor_links));
        }
        add(
            url,
            Member {
                pool: name.clone(),
                shown: name.clone(),
                max: pool.max,
                kind: Kind::Pool,
            },
        );
    }
    Ok(servers)
}

/// Reads each server's connection limits and applies the budget mode: to the servers of the
/// pools and to each replica's server (counting its replica pools). A server that cannot be
/// reached is skipped when all of its pools are lazy (replica pools always are), and is an
/// error otherwise.
pub(super) async fn check(
    config: &mut RuntimeConfig,
    adopted: &[&str],
    providers: &Providers,
) -> Result<Vec<BudgetCheck>> {
    let settings = config.settings.clone();
    let mut checks = Vec::new();
    for (target, Target { url, mut members }) in targets(config).await? {
        // Declared pools first, then replica pools, then the lag monitors' links.
        members.sort_by_key(|m| m.kind);
        let first = &config.pools[&members[0].pool];
        let all_lazy = members
            .iter()
            .all(|m| m.kind != Kind::Pool || config.pools[&m.pool].startup == Startup::Lazy);
        // Behind a pooler the server's max_connections bounds the pooler's server
        // connections, not these pools' client connections (docs/SCALING.md).
        if members
            .iter()
            .any(|m| config.pools[&m.pool].pooler != Pooler::None)
        {
            continue;
        }
        let site = Site::pool(members[0].pool.as_str());
        let timeout = first.startup_timeout.min(first.connect_timeout);
        let password = match crate::pool::password_source(first, providers.get(&members[0].pool)) {
            Some(source) => Some(
                source
                    .fetch()
                    .await
                    .map_err(|reason| source.failed(&site, reason))?,
            ),
            None => None,
        };
        // A multi-host URL: the budget is read from the first host that answers.
        let mut conn = Err(sqlx::Error::PoolClosed);
        let mut host = None;
        for mut options in url.each_host_options("url")? {
            if let Some(password) = &password {
                options = options.password(password);
            }
            host = Some(format!("{}:{}", options.get_host(), options.get_port()));
            conn = match tokio::time::timeout(timeout, PgConnection::connect_with(&options)).await {
                Ok(answer) => answer,
                Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {timeout:?}"),
                ))),
            };
            if conn.is_ok() {
                break;
            }
        }
        let mut conn = match conn {
            Ok(c) => c,
            Err(source) if !all_lazy => {
                return Err(Error::Connect {
                    site,
                    target,
                    source,
                });
            }
            Err(_) => {
                tracing::warn!(server = %target, "server unreachable at start-up; connection budget not checked (all its pools are lazy)");
                continue;
            }
        };
        let (fixed, members): (Vec<Member>, Vec<Member>) = members
            .into_iter()
            .partition(|m| m.kind == Kind::LagMonitor);
        let shown = |ms: &[Member]| -> Vec<(String, u32)> {
            ms.iter().map(|m| (m.shown.clone(), m.max)).collect()
        };
        let mut check = BudgetCheck::read(
            &mut conn,
            shown(&members),
            settings.instances,
            settings.headroom,
        )
        .await
        .map_err(|source| Error::Connect {
            site: site.clone(),
            target: target.clone(),
            source,
        })?
        .with_fixed(shown(&fixed));
        let _ = conn.close().await;
        if members.iter().any(|m| m.kind == Kind::Replica) {
            check.replica = host;
        }
        if !check.fits() {
            match settings.budget_mode {
                BudgetMode::Error => {
                    return Err(Error::Budget {
                        arithmetic: check.arithmetic(),
                    });
                }
                BudgetMode::Warn => {
                    tracing::warn!(server = %target, "connection budget exceeded: {}", check.arithmetic());
                }
                BudgetMode::Scale => {
                    for (member, (_, max)) in members.iter().zip(check.scaled()) {
                        scale(config, adopted, &target, &check, member, max);
                    }
                }
            }
        }
        checks.push(check);
    }
    Ok(checks)
}

/// Shrinks `member`'s maximum to `max` (budget mode `scale`): a declared pool's `max`, or its
/// `replica_max` for a replica's pool (the smallest any replica's server allows).
fn scale(
    config: &mut RuntimeConfig,
    adopted: &[&str],
    target: &str,
    check: &BudgetCheck,
    member: &Member,
    max: u32,
) {
    let name = &member.pool;
    let pool: &mut PoolConfig = config.pools.get_mut(name).expect("pool exists");
    if member.kind == Kind::Replica {
        let from = pool.replica_max.unwrap_or(pool.max);
        let to = from.min(max);
        tracing::warn!(
            server = %target,
            pool = %name,
            from,
            to,
            "replica pool maximum (replica_max) scaled to fit the replica's connection budget: {}",
            check.arithmetic()
        );
        pool.replica_max = Some(to);
        return;
    }
    if adopted.contains(&name.as_str()) {
        // The application built this pool: its size is fixed.
        tracing::warn!(
            server = %target,
            pool = %name,
            max = pool.max,
            wanted = max,
            "connection budget exceeded, and pool `{name}` is adopted: it \
             keeps its own maximum; build it smaller to fit: {}",
            check.arithmetic()
        );
        return;
    }
    tracing::warn!(
        server = %target,
        pool = %name,
        from = pool.max,
        to = max,
        "pool maximum scaled to fit the connection budget: {}",
        check.arithmetic()
    );
    pool.max = max;
    pool.min = pool.min.min(max);
}
