//! codis-server: a Redis 7.0 compatible server whose keyspace is split into
//! Codis' 1024 slots per database (codis.md §2.1).
//!
//! Layers (storage knows nothing of sockets):
//! * [`config`]: redis.conf / argv parsing and the CONFIG parameter table;
//! * [`db`]: the per-slot keyspace, expiry, SCAN cursors;
//! * [`exec`]: the single gate every command passes (lookup, arity, auth,
//!   stats) and the handler table;
//! * [`cmd`]: command handlers, one module per family;
//! * [`codec`]: stored values to and from the RDB value encoding and the
//!   async migration's chunks (DUMP/RESTORE, migrations, RDB files);
//! * [`multi`]: MULTI/EXEC/WATCH (queue, lock set, watch registry);
//! * [`pubsub`]: channels, patterns, keyspace notifications;
//! * [`propagate`]: the ordered stream of every change (AOF, replicas);
//! * [`persist`]: RDB snapshots without fork, save points, start-up load;
//! * [`tracking`]: client-side caching (CLIENT TRACKING invalidations);
//! * [`net`]: listener and connection loop (read, parse every complete
//!   command, execute inline, one write for all replies);
//! * [`server`]: process-wide state, stats, client registry, cron.
#![deny(unsafe_code)]

pub mod acl;
pub mod alloc;
pub mod block;
pub mod client;
pub mod cmd;
pub mod codec;
pub mod config;
pub mod db;
pub mod ds;
pub mod errors;
pub mod evict;
pub mod exec;
pub mod latency;
pub mod log;
pub mod migrate;
pub mod monitor;
pub mod multi;
pub mod net;
pub mod pause;
pub mod persist;
pub mod propagate;
pub mod pubsub;
pub mod repl;
#[cfg(test)]
mod replay_tests;
pub mod script;
pub mod server;
pub mod slowlog;
pub mod stats;
#[cfg(test)]
pub mod testkit;
pub mod tracking;
