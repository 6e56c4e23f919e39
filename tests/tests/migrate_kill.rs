//! A migration whose *source* is killed half-way (issue 5, "Atomicity";
//! codis.md §2.6 step 5 and §2.7.1 "Failures"). The target killed half-way
//! is covered in migrate_sync.rs and migrate_async.rs.
//!
//! Without persistence the source's own copy dies with it, so what must hold
//! is that the target never keeps a *wrong* value for good: every key found
//! on the target afterwards is either complete and equal to the original
//! (with the original TTL), or, for a value that was being chunked, a partial
//! copy that carries the temporary 3 × timeout TTL and so expires by itself.
//! Sync steps are all-or-nothing: only complete keys.

use std::time::Duration;

use tests::data::{Content, pipeline, read_key};
use tests::{Conn, Server, Value};

const TIMEOUT_MS: u64 = 20_000;

/// The original values: strings, plus hashes big enough to be chunked.
fn fill(c: &mut Conn, tag: &str) -> Vec<(Vec<u8>, Content)> {
    let mut out = Vec::new();
    let mut cmds = Vec::new();
    for i in 0..3000 {
        let k = format!("{{{tag}}}:s{i}").into_bytes();
        let v = format!("value-{i}").into_bytes();
        cmds.push(vec![b"SET".to_vec(), k.clone(), v.clone()]);
        out.push((k, Content::Str(v)));
    }
    for h in 0..8 {
        let k = format!("{{{tag}}}:h{h}").into_bytes();
        let mut cmd = vec![b"HSET".to_vec(), k.clone()];
        let mut m = std::collections::BTreeMap::new();
        for f in 0..20_000 {
            let (fk, fv) = (
                format!("f{f}").into_bytes(),
                format!("v{f}-{h}").into_bytes(),
            );
            cmd.push(fk.clone());
            cmd.push(fv.clone());
            m.insert(fk, fv);
        }
        cmds.push(cmd);
        out.push((k, Content::Hash(m)));
    }
    pipeline(c, &cmds);
    out
}

fn kill9(s: &Server) {
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe {
        libc::kill(s.pid() as i32, libc::SIGKILL);
    }
}

/// Checks the rule of the module comment on the target.
/// Returns (complete keys, partial keys).
fn check_target(
    t: &mut Conn,
    originals: &[(Vec<u8>, Content)],
    chunked_ok: bool,
) -> (usize, usize) {
    let (mut complete, mut partial) = (0, 0);
    for (k, want) in originals {
        let Some(got) = read_key(t, k) else { continue };
        let name = String::from_utf8_lossy(k);
        if &got.content == want {
            assert_eq!(got.pttl, -1, "{name}: complete copy must keep no TTL");
            complete += 1;
            continue;
        }
        assert!(chunked_ok, "{name}: partial value after a sync step");
        let (Content::Hash(g), Content::Hash(w)) = (&got.content, want) else {
            panic!(
                "{name}: wrong value on the target: {:?}",
                got.content.type_name()
            )
        };
        assert!(
            g.iter().all(|(f, v)| w.get(f) == Some(v)),
            "{name}: fields that the source never had"
        );
        assert!(
            got.pttl > 0 && got.pttl <= 3 * TIMEOUT_MS as i64,
            "{name}: partial copy without the temporary TTL (pttl {})",
            got.pttl
        );
        partial += 1;
    }
    (complete, partial)
}

fn run(async_mode: bool) {
    let src = Server::start(&[]);
    let dst = Server::start(&[]);
    let mut c = src.conn();
    let originals = fill(&mut c, "victim");
    let slot = protocol::slot::slot_of(b"{victim}");
    let port = dst.port().to_string();
    let slot_s = slot.to_string();
    let timeout = TIMEOUT_MS.to_string();
    // The migration runs on its own connection; the source dies under it.
    let args: Vec<String> = if async_mode {
        [
            "SLOTSMGRTTAGSLOT-ASYNC",
            "127.0.0.1",
            &port,
            &timeout,
            "100",
            "65536",
            &slot_s,
            "100000",
        ]
        .map(String::from)
        .to_vec()
    } else {
        // One key per step (no tag expansion), in a loop: killed between
        // or during steps.
        ["SLOTSMGRTSLOT", "127.0.0.1", &port, &timeout, &slot_s]
            .map(String::from)
            .to_vec()
    };
    let sport = src.port();
    let async_mode_ = async_mode;
    let mover = std::thread::spawn(move || {
        let mut m = Conn::connect(sport).expect("connect");
        m.set_timeout(Duration::from_secs(60));
        // Killed mid-way: no reply (or one, if it finished first).
        let mut last = None;
        for _ in 0..100_000 {
            last = m.try_send(&args).ok();
            if !async_mode_ && last.is_some() {
                continue;
            }
            break;
        }
        last
    });
    // Wait until the target holds part of the data (async: a hash that is
    // only partly copied), then kill.
    let mut t = dst.conn();
    let hashes: Vec<Vec<u8>> = (0..8)
        .map(|h| format!("{{victim}}:h{h}").into_bytes())
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        assert!(std::time::Instant::now() < deadline, "no partial copy seen");
        let ready = if async_mode {
            hashes
                .iter()
                .any(|h| match t.send_value(&[b"HLEN".as_slice(), h]) {
                    Value::Int(n) => n > 0 && n < 20_000,
                    other => panic!("HLEN: {other:?}"),
                })
        } else {
            matches!(t.value("DBSIZE"), Value::Int(n) if n > 0)
        };
        if ready {
            break;
        }
    }
    kill9(&src);
    let reply = mover.join().expect("mover thread");
    std::thread::sleep(Duration::from_millis(100));
    let (complete, partial) = check_target(&mut t, &originals, async_mode);
    eprintln!(
        "async={async_mode}: {complete} complete and {partial} partial keys on the target when the source died (reply {:?})",
        reply.map(|r| tests::escape(&r))
    );
    if async_mode {
        assert!(partial >= 1, "the kill was meant to land mid-value");
    }
    assert_eq!(t.value("SLOTSCHECK"), Value::Simple("OK".into()));
}

#[test]
fn source_killed_mid_async_batch_leaves_no_lasting_partial_value() {
    run(true);
}

#[test]
fn source_killed_mid_sync_migration_leaves_only_complete_keys() {
    run(false);
}
