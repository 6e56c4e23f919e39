//! The Codis `Slot` model (codis.md §4.1): one slot as a proxy routes it, as
//! pushed by `fillslots` and read from a Codis-style `--fillslots FILE`;
//! parsing and validation.
//!
//! A slot file is a JSON array of Slot objects. Ids must be in 0..1023 and
//! unique; every address must be `host:port`. A bad file is refused as a
//! whole, so the running table is kept.

use serde::{Deserialize, Serialize};

pub const MAX_SLOTS: usize = protocol::slot::SLOTS;

/// One slot's routing state (Codis' `models.Slot`, omitempty fields).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slot {
    pub id: i64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub locked: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub backend_addr: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub backend_addr_group_id: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub migrate_from: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub migrate_from_group_id: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub forward_method: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replica_groups: Vec<Vec<String>>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// Whether `s` looks like `host:port` with a port in 1..65535.
pub fn valid_addr(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    let host_ok = !host.is_empty()
        && host.bytes().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'[' | b']' | b':')
        });
    host_ok && matches!(port.parse::<u32>(), Ok(p) if (1..=65535).contains(&p))
}

/// Parses and validates a JSON array of slots.
pub fn parse_slots(json: &[u8]) -> Result<Vec<Slot>, String> {
    let slots: Vec<Slot> =
        serde_json::from_slice(json).map_err(|e| format!("bad slot json: {e}"))?;
    validate(&slots)?;
    Ok(slots)
}

/// Checks ids (range, uniqueness), addresses and forward methods.
pub fn validate(slots: &[Slot]) -> Result<(), String> {
    let mut seen = vec![false; MAX_SLOTS];
    for s in slots {
        if s.id < 0 || s.id >= MAX_SLOTS as i64 {
            return Err(format!(
                "invalid slot id = {}, out of range [0,{MAX_SLOTS})",
                s.id
            ));
        }
        let i = s.id as usize;
        if seen[i] {
            return Err(format!("slot-[{}] appears more than once", s.id));
        }
        seen[i] = true;
        for (what, a) in [
            ("backend_addr", &s.backend_addr),
            ("migrate_from", &s.migrate_from),
        ] {
            if !a.is_empty() && !valid_addr(a) {
                return Err(format!("slot-[{}] has invalid {what} {a:?}", s.id));
            }
        }
        if !s.migrate_from.is_empty() && s.backend_addr.is_empty() {
            return Err(format!(
                "slot-[{}] has migrate_from but no backend_addr",
                s.id
            ));
        }
        for g in &s.replica_groups {
            for a in g {
                if !valid_addr(a) {
                    return Err(format!("slot-[{}] has invalid replica address {a:?}", s.id));
                }
            }
        }
        if !matches!(s.forward_method, 0 | 1) {
            return Err(format!(
                "slot-[{}] has invalid forward_method {}",
                s.id, s.forward_method
            ));
        }
    }
    Ok(())
}

/// Expands a list of slots to all 1024 (absent ids become unassigned).
pub fn full_table(slots: &[Slot]) -> Vec<Slot> {
    let mut all: Vec<Slot> = (0..MAX_SLOTS)
        .map(|i| Slot {
            id: i as i64,
            ..Slot::default()
        })
        .collect();
    for s in slots {
        if let Some(d) = usize::try_from(s.id).ok().and_then(|i| all.get_mut(i)) {
            *d = s.clone();
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_minimal() {
        let s = parse_slots(
            br#"[{"id":0,"backend_addr":"127.0.0.1:16379","backend_addr_group_id":1}]"#,
        )
        .unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].backend_addr, "127.0.0.1:16379");
        assert_eq!(
            serde_json::to_string(&s[0]).unwrap(),
            r#"{"id":0,"backend_addr":"127.0.0.1:16379","backend_addr_group_id":1}"#
        );
    }

    #[test]
    fn refuses_bad() {
        assert!(parse_slots(b"[{").is_err());
        assert!(parse_slots(br#"[{"id":1024}]"#).is_err());
        assert!(parse_slots(br#"[{"id":-1}]"#).is_err());
        assert!(parse_slots(br#"[{"id":3},{"id":3}]"#).is_err());
        assert!(parse_slots(br#"[{"id":3,"backend_addr":"nohost"}]"#).is_err());
        assert!(parse_slots(br#"[{"id":3,"backend_addr":"h:99999"}]"#).is_err());
        assert!(parse_slots(br#"[{"id":3,"bogus":1}]"#).is_err());
        assert!(parse_slots(br#"[{"id":3,"backend_addr":"h:1","forward_method":7}]"#).is_err());
        assert!(parse_slots(br#"[{"id":3,"backend_addr":"localhost:1"}]"#).is_ok());
    }
}
