//! The one walk over a value's elements, resumable between calls (the value
//! must not change in between: migrations keep it in flight).
//!
//! Order: a list by index, a zset by rank (ascending, or from the highest
//! rank down), a hash or set in SCAN order (listpack / intset order for the
//! compact encodings, bucket order for a table: the same order their
//! iterators give), a string by byte offset, a stream by node (master ID
//! order; its counters and groups are the writers' business).

use crate::db::{Object, ValueRef};

/// One element as the walk hands it out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Elem<'a> {
    /// A list element or a set member.
    Item(&'a [u8]),
    /// A hash field and its value.
    Pair(&'a [u8], &'a [u8]),
    /// A zset member and its score.
    Scored(&'a [u8], f64),
    /// The next bytes of a string.
    Bytes(&'a [u8]),
    /// A stream node: its master ID and listpack.
    Node(crate::ds::stream::StreamId, &'a [u8]),
}

/// What the receiver of an element wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Go,
    /// End this walk after this element (a hash or set walk first hands out
    /// the rest of its current SCAN call, which cannot resume mid-way).
    Stop,
}

/// How a walk reads the value.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Zset ranks read per positioning (elements past a Stop are read and
    /// not handed out).
    pub ranks: usize,
    /// The COUNT of each SCAN call over a hash or set (HSCAN counts fields
    /// and values).
    pub scan_count: usize,
    /// SCAN calls after which a hash or set walk returns.
    pub scans: usize,
    /// Bytes per [`Elem::Bytes`] of a string.
    pub string_part: usize,
}

impl Pace {
    /// Everything in one walk.
    pub const WHOLE: Pace = Pace {
        ranks: usize::MAX,
        scan_count: 1024,
        scans: usize::MAX,
        string_part: usize::MAX,
    };
}

/// Where a walk stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor {
    /// Elements (string: bytes) handed out so far: the list index, the
    /// number of zset ranks or the string offset to resume from.
    done: usize,
    /// Hash / set SCAN cursor.
    scan: u64,
    /// A hash / set walk has made its last SCAN call.
    ended: bool,
    /// A zset is walked from the highest rank down.
    rev: bool,
    /// A stream walk's last node handed out.
    node: Option<crate::ds::stream::StreamId>,
}

impl Cursor {
    /// A walk from the start (zsets by ascending rank).
    pub fn new() -> Cursor {
        Cursor::default()
    }

    /// A walk from the start that takes zsets from the highest rank down.
    pub fn descending() -> Cursor {
        Cursor {
            rev: true,
            ..Cursor::default()
        }
    }

    /// Elements (string: bytes) handed out so far.
    pub fn done(&self) -> usize {
        self.done
    }

    /// The SCAN cursor of a hash / set walk (0 before and after).
    pub fn scan_cursor(&self) -> u64 {
        self.scan
    }

    /// Hands the elements after the cursor to `f` until it says
    /// [`Flow::Stop`], the value ends, or (hash, set) `pace.scans` SCAN calls
    /// were made. Returns true once every element has been handed out.
    pub fn walk(
        &mut self,
        v: ValueRef<'_>,
        pace: &Pace,
        mut f: impl FnMut(Elem<'_>) -> Flow,
    ) -> bool {
        if let Some(s) = super::str_bytes(v) {
            let step = pace.string_part.max(1);
            while self.done < s.len() {
                let end = self.done.saturating_add(step).min(s.len());
                let Some(part) = s.get(self.done..end) else {
                    break;
                };
                self.done = end;
                if f(Elem::Bytes(part)) == Flow::Stop {
                    break;
                }
            }
            return self.done >= s.len();
        }
        match v {
            // Strings are walked above.
            ValueRef::Str(_) | ValueRef::Obj(Object::Str(_)) => true,
            ValueRef::Obj(Object::List(l)) => {
                if self.done < l.len() {
                    for e in l.iter_from(self.done) {
                        self.done += 1;
                        if f(Elem::Item(e)) == Flow::Stop {
                            break;
                        }
                    }
                }
                self.done >= l.len()
            }
            ValueRef::Obj(Object::ZSet(z)) => {
                let len = z.len();
                let step = pace.ranks.max(1);
                let mut stop = false;
                while self.done < len && !stop {
                    let (a, b) = if self.rev {
                        let end = len - self.done;
                        (end.saturating_sub(step), end)
                    } else {
                        (self.done, self.done.saturating_add(step).min(len))
                    };
                    let before = self.done;
                    let done = &mut self.done;
                    z.for_ranks(a, b, self.rev, |m, s| {
                        if !stop {
                            *done += 1;
                            stop = f(Elem::Scored(m, s)) == Flow::Stop;
                        }
                    });
                    if self.done == before {
                        // Fewer ranks than its length says: nothing more.
                        break;
                    }
                }
                self.done >= len
            }
            ValueRef::Obj(Object::Hash(h)) => {
                let mut stop = false;
                let mut calls = 0;
                while !self.ended && !stop && calls < pace.scans {
                    let done = &mut self.done;
                    self.scan = h.scan(self.scan, pace.scan_count, |k, v| {
                        *done += 1;
                        stop |= f(Elem::Pair(k, v)) == Flow::Stop;
                    });
                    calls += 1;
                    self.ended = self.scan == 0;
                }
                self.ended
            }
            ValueRef::Obj(Object::Stream(st)) => {
                for (id, lp) in st.nodes_after(self.node) {
                    self.node = Some(id);
                    self.done += 1;
                    if f(Elem::Node(id, lp)) == Flow::Stop {
                        return st.nodes_after(self.node).next().is_none();
                    }
                }
                true
            }
            ValueRef::Obj(Object::Set(x)) => {
                let mut stop = false;
                let mut calls = 0;
                while !self.ended && !stop && calls < pace.scans {
                    let done = &mut self.done;
                    self.scan = x.scan(self.scan, pace.scan_count, |m| {
                        *done += 1;
                        stop |= m.with_bytes(|b| f(Elem::Item(b))) == Flow::Stop;
                    });
                    calls += 1;
                    self.ended = self.scan == 0;
                }
                self.ended
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ds::Set;
    use crate::ds::set::MemberRef;

    /// Walks `v` to the end, stopping after every `every` elements and
    /// resuming with a fresh walk call; returns what came out, in order.
    fn collect(v: ValueRef<'_>, mut c: Cursor, pace: &Pace, every: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut calls = 0;
        loop {
            let mut k = 0;
            let fin = c.walk(v, pace, |e| {
                out.push(match e {
                    Elem::Item(b) | Elem::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
                    Elem::Pair(a, b) => {
                        format!(
                            "{}={}",
                            String::from_utf8_lossy(a),
                            String::from_utf8_lossy(b)
                        )
                    }
                    Elem::Scored(m, s) => format!("{}@{s}", String::from_utf8_lossy(m)),
                    Elem::Node(id, lp) => format!("{}:{}", id.to_text(), lp.len()),
                });
                k += 1;
                if k % every == 0 { Flow::Stop } else { Flow::Go }
            });
            calls += 1;
            assert!(calls < 1_000_000);
            if fin {
                // Finished walks stay finished and hand out nothing.
                assert!(c.walk(v, pace, |_| panic!("element after the end")));
                return out;
            }
        }
    }

    fn values(n: usize) -> Vec<Object> {
        super::super::test_values(n, |i| (i % 17) as f64)
    }

    /// However the walk is cut (stops after every k elements, one SCAN call
    /// per walk, small rank batches), it yields every element exactly once
    /// and in the same order as one uninterrupted walk.
    #[test]
    fn resumable_walk_yields_every_element_once() {
        let tight = Pace {
            ranks: 3,
            scan_count: 1,
            scans: 1,
            string_part: 7,
        };
        for n in [1, 5, 200, 3000] {
            for o in values(n) {
                let v = ValueRef::Obj(&o);
                let whole = collect(v, Cursor::new(), &Pace::WHOLE, usize::MAX);
                assert_eq!(whole.len(), n);
                let distinct: std::collections::BTreeSet<_> = whole.iter().collect();
                assert_eq!(distinct.len(), n, "an element twice");
                for every in [1, 2, 7, 1000] {
                    assert_eq!(collect(v, Cursor::new(), &tight, every), whole);
                    assert_eq!(collect(v, Cursor::new(), &Pace::WHOLE, every), whole);
                }
                if let Object::ZSet(_) = o {
                    let mut down = collect(v, Cursor::descending(), &tight, 5);
                    down.reverse();
                    assert_eq!(down, whole, "descending walk");
                }
            }
        }
        let s: Vec<u8> = (0..100u8).collect();
        let parts = collect(ValueRef::Str(&s), Cursor::new(), &tight, 3);
        assert_eq!(parts.len(), 100usize.div_ceil(7));
        let mut c = Cursor::new();
        let mut got = Vec::new();
        assert!(!c.walk(ValueRef::Str(&s), &tight, |e| {
            let Elem::Bytes(b) = e else { panic!() };
            got.extend_from_slice(b);
            Flow::Stop
        }));
        assert_eq!(c.done(), 7);
        assert!(c.walk(ValueRef::Str(&s), &Pace::WHOLE, |e| {
            let Elem::Bytes(b) = e else { panic!() };
            got.extend_from_slice(b);
            Flow::Go
        }));
        assert_eq!(got, s);
        assert!(Cursor::new().walk(ValueRef::Str(b""), &tight, |_| panic!()));
    }

    /// Compact encodings come out whole from one SCAN call, in the order of
    /// their iterators; a table hash or set in its iterators' order too.
    #[test]
    fn scan_order_is_iteration_order() {
        let ints = Set::from_members(
            [MemberRef::Int(9), MemberRef::Int(-3), MemberRef::Int(4)],
            512,
        );
        let o = Object::Set(ints.clone());
        let mut c = Cursor::new();
        let mut got = Vec::new();
        let one_call = Pace {
            scans: 1,
            ..Pace::WHOLE
        };
        assert!(c.walk(ValueRef::Obj(&o), &one_call, |e| {
            let Elem::Item(b) = e else { panic!() };
            got.push(b.to_vec());
            Flow::Stop
        }));
        assert_eq!(got, [b"-3".to_vec(), b"4".to_vec(), b"9".to_vec()]);
        for o in values(3000).into_iter().chain(values(20)) {
            let v = ValueRef::Obj(&o);
            let walked = collect(v, Cursor::new(), &Pace::WHOLE, usize::MAX);
            let iterated: Vec<String> = match &o {
                Object::Hash(h) => h
                    .iter()
                    .map(|(a, b)| {
                        format!(
                            "{}={}",
                            String::from_utf8_lossy(a),
                            String::from_utf8_lossy(b)
                        )
                    })
                    .collect(),
                Object::Set(s) => s
                    .iter()
                    .map(|m| m.with_bytes(|b| String::from_utf8_lossy(b).into_owned()))
                    .collect(),
                _ => continue,
            };
            assert_eq!(walked, iterated);
        }
    }
}
