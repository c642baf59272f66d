//! Keeps a pool's replicas the members a Patroni cluster lists: asks its REST API every
//! `replicas_refresh` and follows the answer.
//!
//! A member that joins gets a lazy pool of its own and serves reads once the lag monitor has
//! measured it; one that leaves is dropped from the set at once, and its pool closes once
//! the reads running on it end. While the REST API cannot be reached, the set stays as last
//! answered.

use std::collections::HashSet;
use std::sync::{Arc, Weak};

use super::node::Node;
use super::patroni::Member;
use super::set::Replicas;

/// Starts asking Patroni for the members of `set`, when its replicas come from there; the
/// task ends when the set is dropped or its pool closed.
pub(super) fn spawn(set: &Arc<Replicas>) {
    if set.discovery.is_none() || tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    let weak = Arc::downgrade(set);
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            let Some(set) = Weak::upgrade(&weak) else {
                return;
            };
            if set.closed() {
                return;
            }
            let discovery = set.discovery.as_ref().expect("checked above");
            let refresh = discovery.refresh;
            match discovery.ask().await {
                Ok(members) => {
                    failing = false;
                    follow(&set, &members);
                }
                Err(why) => {
                    if !failing {
                        tracing::warn!(pool = %set.pool_name, error = %why, "cannot ask Patroni's REST API for the cluster's members; the replicas stay as last answered");
                    }
                    failing = true;
                }
            }
            drop(set);
            tokio::time::sleep(refresh).await;
        }
    });
}

/// Where a replica's server listens.
fn address(node: &Node) -> (String, u16) {
    let options = node.pool.sqlx().connect_options();
    (options.get_host().to_owned(), options.get_port())
}

/// Makes the set's replicas the `members`: keeps those still listed, adds new ones, drops
/// the rest.
fn follow(set: &Replicas, members: &[Member]) {
    let listed: HashSet<(String, u16)> = members.iter().map(|m| (m.host.clone(), m.port)).collect();
    let current = set.nodes();
    let known: HashSet<(String, u16)> = current.iter().map(|n| address(n)).collect();
    let (kept, left): (Vec<_>, Vec<_>) = current
        .iter()
        .cloned()
        .partition(|n| listed.contains(&address(n)));
    let mut joined = Vec::new();
    for member in members {
        if known.contains(&(member.host.clone(), member.port)) {
            continue;
        }
        match set.maker.member(member) {
            Ok(node) => {
                tracing::info!(pool = %set.pool_name, member = %member.name, host = %member.host, port = member.port, "Patroni lists a new member: a candidate replica");
                joined.push(node);
            }
            Err(e) => {
                tracing::warn!(pool = %set.pool_name, member = %member.name, error = %e, "cannot make a pool for a member Patroni lists; it serves no reads")
            }
        }
    }
    if joined.is_empty() && left.is_empty() {
        return;
    }
    let next: Vec<Arc<Node>> = kept.into_iter().chain(joined).collect();
    *set.nodes.write().unwrap_or_else(|e| e.into_inner()) = next.into();
    for node in left {
        let (host, port) = address(&node);
        tracing::info!(pool = %set.pool_name, %host, port, "a member left the Patroni cluster's list: it serves no more reads");
        // Closing waits for the reads running on it; nothing routes to it any more.
        tokio::spawn(async move { node.pool.sqlx().close().await });
    }
}
