//! The cluster table: one JSON document that `codis-ctl` edits and every
//! proxy serves, kept in a slot-table store (a file, or one etcd key). It
//! holds what Codis keeps in its coordinator as many nodes (codis.md §4.1):
//! the groups (servers, master first) and the 1024 slot mappings with their
//! migration actions, plus a `version` that every change increments. A
//! proxy turns it into the per-slot routing view with [`Table::views`],
//! following the dashboard's state-to-view rules (codis.md §4.3), so the
//! proxy needs no knowledge of groups or actions beyond this module.
//!
//! Action states, in order: `pending` (planned) → `prepared` (every proxy
//! holds the slot's requests: backend = target, migrate_from = source,
//! locked) → `migrating` (unlocked; proxies forward through the source's
//! `SLOTSMGRT-EXEC-WRAPPER`) → done (`group_id` = target, no action). A
//! crashed run leaves these states behind and the next run continues them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::slot::{MAX_SLOTS, Slot, valid_addr};

/// Largest group id (as Codis).
pub const MAX_GROUP_ID: u32 = 9999;

/// A migration action's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    Prepared,
    Migrating,
}

/// A slot's migration action (absent when the slot is idle).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub state: State,
    pub target_id: u32,
}

/// One slot's owner (Codis' `SlotMapping`): `group_id` 0 is unassigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotMapping {
    pub id: u32,
    #[serde(default)]
    pub group_id: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
}

/// A group of servers: `servers[0]` is the master, the rest its replicas.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub servers: Vec<String>,
    /// A promotion is switching the master: the group's slots are held.
    #[serde(default, skip_serializing_if = "is_false")]
    pub promoting: bool,
    /// Proxies may send pure reads of the group's idle slots to its
    /// replicas (Codis' `replica_group`, here for the whole group).
    #[serde(default, skip_serializing_if = "is_false")]
    pub replica_reads: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The whole document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    pub version: u64,
    #[serde(default)]
    pub groups: BTreeMap<u32, Group>,
    #[serde(default)]
    pub slots: Vec<SlotMapping>,
}

impl Default for Table {
    fn default() -> Self {
        Table {
            version: 0,
            groups: BTreeMap::new(),
            slots: (0..MAX_SLOTS as u32)
                .map(|id| SlotMapping {
                    id,
                    group_id: 0,
                    action: None,
                })
                .collect(),
        }
    }
}

impl Table {
    /// Parses and validates a document; missing slots read as unassigned.
    pub fn parse(json: &[u8]) -> Result<Table, String> {
        let mut t: Table =
            serde_json::from_slice(json).map_err(|e| format!("bad table json: {e}"))?;
        t.normalize()?;
        t.validate()?;
        Ok(t)
    }

    /// The stored form in a file (pretty, as Codis stores its models).
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// The compact form (etcd: every change travels to every proxy).
    pub fn to_json_compact(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Puts the slots in id order and adds the missing ones unassigned.
    fn normalize(&mut self) -> Result<(), String> {
        let mut all: Vec<Option<SlotMapping>> = vec![None; MAX_SLOTS];
        for s in &self.slots {
            let i = s.id as usize;
            if i >= MAX_SLOTS {
                return Err(format!(
                    "invalid slot id = {}, out of range [0,{MAX_SLOTS})",
                    s.id
                ));
            }
            if all[i].is_some() {
                return Err(format!("slot-[{}] appears more than once", s.id));
            }
            all[i] = Some(*s);
        }
        self.slots = all
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                s.unwrap_or(SlotMapping {
                    id: i as u32,
                    group_id: 0,
                    action: None,
                })
            })
            .collect();
        Ok(())
    }

    /// Checks group ids, addresses (unique across groups) and that every
    /// slot names existing, non-empty groups.
    pub fn validate(&self) -> Result<(), String> {
        let mut seen = std::collections::HashMap::new();
        for (gid, g) in &self.groups {
            if *gid == 0 || *gid > MAX_GROUP_ID {
                return Err(format!(
                    "invalid group id = {gid}, out of range [1,{MAX_GROUP_ID}]"
                ));
            }
            for a in &g.servers {
                if !valid_addr(a) {
                    return Err(format!("group-[{gid}] has invalid server address {a:?}"));
                }
                if let Some(other) = seen.insert(a.as_str(), *gid) {
                    return Err(format!(
                        "server {a} is in group-[{other}] and group-[{gid}]"
                    ));
                }
            }
        }
        let usable = |gid: u32| self.groups.get(&gid).is_some_and(|g| !g.servers.is_empty());
        for s in &self.slots {
            if s.group_id != 0 && !usable(s.group_id) {
                return Err(format!(
                    "slot-[{}] is in group-[{}], which is missing or empty",
                    s.id, s.group_id
                ));
            }
            if let Some(a) = s.action {
                if !usable(a.target_id) {
                    return Err(format!(
                        "slot-[{}] moves to group-[{}], which is missing or empty",
                        s.id, a.target_id
                    ));
                }
                if s.group_id == 0 || s.group_id == a.target_id {
                    return Err(format!(
                        "slot-[{}] has an action from group-[{}] to group-[{}]",
                        s.id, s.group_id, a.target_id
                    ));
                }
            }
        }
        Ok(())
    }

    /// A group's master address.
    pub fn master(&self, gid: u32) -> Option<&str> {
        self.groups
            .get(&gid)
            .and_then(|g| g.servers.first())
            .map(String::as_str)
    }

    /// The group a server belongs to.
    pub fn group_of(&self, addr: &str) -> Option<u32> {
        self.groups
            .iter()
            .find(|(_, g)| g.servers.iter().any(|s| s == addr))
            .map(|(id, _)| *id)
    }

    fn held(&self, gid: u32) -> bool {
        self.groups.get(&gid).is_some_and(|g| g.promoting)
    }

    /// One slot as proxies must route it (codis.md §4.3's table).
    pub fn view(&self, m: &SlotMapping) -> Slot {
        let addr = |gid: u32| self.master(gid).unwrap_or_default().to_string();
        let mut s = Slot {
            id: m.id as i64,
            ..Slot::default()
        };
        match m.action {
            None
            | Some(Action {
                state: State::Pending,
                ..
            }) => {
                if m.group_id != 0 {
                    s.backend_addr = addr(m.group_id);
                    s.backend_addr_group_id = m.group_id as i64;
                }
                s.locked = self.held(m.group_id);
                // Replicas only for idle slots (codis.md §4.3).
                if m.action.is_none()
                    && let Some(g) = self.groups.get(&m.group_id)
                    && g.replica_reads
                    && !g.promoting
                    && g.servers.len() > 1
                {
                    s.replica_groups = vec![g.servers[1..].to_vec()];
                }
            }
            Some(a) => {
                s.backend_addr = addr(a.target_id);
                s.backend_addr_group_id = a.target_id as i64;
                s.migrate_from = addr(m.group_id);
                s.migrate_from_group_id = m.group_id as i64;
                s.forward_method = 1;
                s.locked =
                    a.state == State::Prepared || self.held(m.group_id) || self.held(a.target_id);
            }
        }
        s
    }

    /// All 1024 slots as proxies must route them.
    pub fn views(&self) -> Vec<Slot> {
        self.slots.iter().map(|m| self.view(m)).collect()
    }
}

/// A slot document as a proxy reads it: Codis' JSON array of `Slot`s
/// (no version), or a [`Table`] (its version and its views).
pub fn parse_slot_source(json: &[u8]) -> Result<(Option<u64>, Vec<Slot>), String> {
    let first = json.iter().find(|c| !c.is_ascii_whitespace());
    if first == Some(&b'{') {
        let t = Table::parse(json)?;
        Ok((Some(t.version), t.views()))
    } else {
        Ok((None, crate::slot::parse_slots(json)?))
    }
}

/// Parses `A-B`, `A` or a comma-separated list of them into slot ids.
pub fn parse_slot_ranges(s: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let p = |x: &str| -> Result<u32, String> {
            x.trim()
                .parse::<u32>()
                .ok()
                .filter(|v| (*v as usize) < MAX_SLOTS)
                .ok_or_else(|| format!("invalid slot {x:?}, expected 0..{}", MAX_SLOTS - 1))
        };
        let (a, b) = (p(a)?, p(b)?);
        if a > b {
            return Err(format!("invalid slot range {part:?}"));
        }
        out.extend(a..=b);
    }
    out.sort_unstable();
    out.dedup();
    if out.is_empty() {
        return Err("no slots given".into());
    }
    Ok(out)
}

/// Formats slot ids as compact ranges (`0-511,600`).
pub fn format_ranges(ids: &[u32]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let start = ids[i];
        let mut end = start;
        while i + 1 < ids.len() && ids[i + 1] == end + 1 {
            i += 1;
            end = ids[i];
        }
        out.push(if start == end {
            format!("{start}")
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_groups() -> Table {
        let mut t = Table::default();
        t.groups.insert(
            1,
            Group {
                servers: vec!["127.0.0.1:6379".into(), "127.0.0.1:6389".into()],
                ..Default::default()
            },
        );
        t.groups.insert(
            2,
            Group {
                servers: vec!["127.0.0.1:6380".into()],
                ..Default::default()
            },
        );
        for s in &mut t.slots {
            s.group_id = 1;
        }
        t
    }

    #[test]
    fn views_follow_the_state_table() {
        let mut t = two_groups();
        t.slots[5].action = Some(Action {
            state: State::Pending,
            target_id: 2,
        });
        t.slots[6].action = Some(Action {
            state: State::Prepared,
            target_id: 2,
        });
        t.slots[7].action = Some(Action {
            state: State::Migrating,
            target_id: 2,
        });
        t.slots[8].group_id = 0;
        t.validate().unwrap();
        let v = t.views();
        assert_eq!(v[5].backend_addr, "127.0.0.1:6379");
        assert!(v[5].migrate_from.is_empty() && !v[5].locked);
        assert_eq!(v[6].backend_addr, "127.0.0.1:6380");
        assert_eq!(v[6].migrate_from, "127.0.0.1:6379");
        assert!(v[6].locked);
        assert_eq!(v[7].backend_addr, "127.0.0.1:6380");
        assert_eq!(v[7].migrate_from, "127.0.0.1:6379");
        assert_eq!(v[7].forward_method, 1);
        assert!(!v[7].locked);
        assert!(v[8].backend_addr.is_empty());
        assert!(v[0].replica_groups.is_empty());
        t.groups.get_mut(&1).unwrap().replica_reads = true;
        let v = t.views();
        assert_eq!(
            v[0].replica_groups,
            vec![vec!["127.0.0.1:6389".to_string()]]
        );
        assert!(v[5].replica_groups.is_empty(), "a slot with an action");
        t.groups.get_mut(&1).unwrap().promoting = true;
        assert!(t.views()[0].locked);
        assert!(t.views()[0].replica_groups.is_empty());
    }

    #[test]
    fn round_trip_and_both_formats() {
        let mut t = two_groups();
        t.version = 7;
        let j = t.to_json();
        assert_eq!(Table::parse(&j).unwrap(), t);
        let (v, slots) = parse_slot_source(&j).unwrap();
        assert_eq!(v, Some(7));
        assert_eq!(slots.len(), MAX_SLOTS);
        let (v, slots) = parse_slot_source(br#" [{"id":0,"backend_addr":"127.0.0.1:1"}]"#).unwrap();
        assert_eq!((v, slots.len()), (None, 1));
        // Missing slots read as unassigned.
        let t = Table::parse(
            br#"{"version":1,"groups":{"1":{"servers":["h:1"]}},"slots":[{"id":3,"group_id":1}]}"#,
        )
        .unwrap();
        assert_eq!(t.slots.len(), MAX_SLOTS);
        assert_eq!(t.slots[3].group_id, 1);
        assert_eq!(t.slots[4].group_id, 0);
    }

    #[test]
    fn refuses_inconsistent_tables() {
        for bad in [
            r#"{"version":1,"slots":[{"id":3,"group_id":1}]}"#,
            r#"{"version":1,"groups":{"1":{"servers":["h:1"]},"2":{"servers":["h:1"]}}}"#,
            r#"{"version":1,"groups":{"0":{"servers":["h:1"]}}}"#,
            r#"{"version":1,"groups":{"1":{"servers":["nohost"]}}}"#,
            r#"{"version":1,"groups":{"1":{"servers":["h:1"]}},"slots":[{"id":3,"group_id":1,"action":{"state":"pending","target_id":1}}]}"#,
            r#"{"version":1,"groups":{"1":{"servers":["h:1"]}},"slots":[{"id":3,"group_id":1,"action":{"state":"pending","target_id":9}}]}"#,
            r#"{"version":1,"slots":[{"id":1024}]}"#,
            r#"{"version":1,"bogus":1}"#,
        ] {
            assert!(Table::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_slot_ranges("3").unwrap(), vec![3]);
        assert_eq!(parse_slot_ranges("1-3,2,7").unwrap(), vec![1, 2, 3, 7]);
        assert!(parse_slot_ranges("5-1").is_err());
        assert!(parse_slot_ranges("1024").is_err());
        assert!(parse_slot_ranges("").is_err());
        assert_eq!(format_ranges(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
    }
}
