//! Cluster state shared by `codis-proxy` and `codis-ctl`: the Codis slot
//! model (`slot`), the cluster table with groups and migration actions
//! (`table`), the slot-table stores (`store`: a file or an etcd key) and
//! the etcd v3 client they use (`etcd`), and the control tool (`ctl`).

#![deny(unsafe_code)]

pub mod ctl;
pub mod etcd;
pub mod http;
pub mod slot;
pub mod store;
pub mod table;
