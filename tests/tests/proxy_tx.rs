//! MULTI/EXEC/DISCARD/WATCH/UNWATCH through codis-proxy (issue 14): a
//! transaction whose keys share a slot runs whole on the slot's owner, with
//! the replies a direct server gives (compared byte for byte); a key of
//! another slot refuses it; WATCH works across clients; a slot switch
//! between WATCH and EXEC aborts cleanly; a transaction on a migrating slot
//! runs whole on the new owner; concurrent transactions stay atomic.

use std::time::Duration;

use tests::proxy::{Proxy, replace_file, split_slots};
use tests::{Conn, Server, assert_reply};

/// Runs `cmds` on a connection; the raw replies.
fn replies(c: &mut Conn, cmds: &[&[&str]]) -> Vec<Vec<u8>> {
    cmds.iter().map(|cmd| c.send(cmd)).collect()
}

#[test]
fn same_replies_as_a_direct_server() {
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let direct = Server::start(&[]);
    let p = Proxy::start(Some(&split_slots(a.port(), b.port(), 512)), &[]);
    let script: &[&[&str]] = &[
        &["MULTI"],
        &["SET", "{u}name", "ann"],
        &["INCR", "{u}visits"],
        &["LPUSH", "{u}log", "a", "b"],
        &["HSET", "{u}h", "f", "v"],
        &["GET", "{u}name"],
        &["PING"],
        &["EXEC"],
        // Errors at run time stay inside EXEC's array.
        &["MULTI"],
        &["INCR", "{u}name"],
        &["SET", "{u}x", "1"],
        &["EXEC"],
        // Queuing errors abort.
        &["MULTI"],
        &["SET", "{u}y"],
        &["NOSUCHCOMMAND", "x"],
        &["EXEC"],
        &["EXISTS", "{u}y"],
        // Nesting, and WATCH inside MULTI, are refused without aborting.
        &["MULTI"],
        &["MULTI"],
        &["WATCH", "{u}x"],
        &["SET", "{u}z", "1"],
        &["EXEC"],
        // DISCARD.
        &["MULTI"],
        &["SET", "{u}d", "1"],
        &["DISCARD"],
        &["EXISTS", "{u}d"],
        &["EXEC"],
        &["DISCARD"],
        // WATCH, untouched: runs.
        &["WATCH", "{u}name", "{u}visits"],
        &["MULTI"],
        &["INCR", "{u}visits"],
        &["EXEC"],
        &["UNWATCH"],
        // Blocking commands run without blocking inside a transaction.
        &["MULTI"],
        &["BLPOP", "{u}empty", "0"],
        &["RPOP", "{u}log"],
        &["EXEC"],
        // Same-slot multi-key commands.
        &["MULTI"],
        &["MSET", "{u}m1", "1", "{u}m2", "2"],
        &["MGET", "{u}m1", "{u}m2", "{u}m3"],
        &["RENAME", "{u}m1", "{u}m4"],
        &["DEL", "{u}m2", "{u}m4"],
        &["EXEC"],
    ];
    let mut pc = p.conn();
    let mut dc = direct.conn();
    let got = replies(&mut pc, script);
    let want = replies(&mut dc, script);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            String::from_utf8_lossy(g),
            String::from_utf8_lossy(w),
            "command {i}: {:?}",
            script[i]
        );
    }
    // RESP3 sessions get RESP3 replies from EXEC.
    let mut p3 = p.conn();
    let mut d3 = direct.conn();
    p3.send(&["HELLO", "3"]);
    d3.send(&["HELLO", "3"]);
    let s3: &[&[&str]] = &[
        &["MULTI"],
        &["HSET", "{v}h", "a", "1"],
        &["HGETALL", "{v}h"],
        &["EXEC"],
    ];
    assert_eq!(replies(&mut p3, s3), replies(&mut d3, s3));
}

#[test]
fn cross_slot_watch_and_clients() {
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let p = Proxy::start(Some(&split_slots(a.port(), b.port(), 512)), &[]);
    let mut c = p.conn();
    let mut other = p.conn();
    // WATCH of keys in two slots is refused; so is a later WATCH of another
    // slot, and a transaction key of another slot than the watched one.
    assert_reply(
        &c.send(&["WATCH", "k1", "k2"]),
        b"-CROSSSLOT Keys in request don't hash to the same slot\r\n",
    );
    assert_reply(&c.send(&["WATCH", "{w}a"]), b"+OK\r\n");
    assert_reply(
        &c.send(&["WATCH", "{x}a"]),
        b"-CROSSSLOT Keys in request don't hash to the same slot\r\n",
    );
    assert_reply(&c.send(&["MULTI"]), b"+OK\r\n");
    assert_reply(
        &c.send(&["SET", "{x}a", "1"]),
        b"-CROSSSLOT Keys in request don't hash to the same slot\r\n",
    );
    assert_reply(
        &c.send(&["EXEC"]),
        b"-EXECABORT Transaction discarded because of previous errors.\r\n",
    );
    // A watched key changed by another client: EXEC answers null.
    assert_reply(&c.send(&["WATCH", "{w}a"]), b"+OK\r\n");
    assert_reply(&other.send(&["SET", "{w}a", "theirs"]), b"+OK\r\n");
    c.send(&["MULTI"]);
    c.send(&["SET", "{w}a", "mine"]);
    assert_reply(&c.send(&["EXEC"]), b"*-1\r\n");
    assert_reply(&c.send(&["GET", "{w}a"]), b"$6\r\ntheirs\r\n");
    // UNWATCH forgets it.
    assert_reply(&c.send(&["WATCH", "{w}a"]), b"+OK\r\n");
    other.send(&["SET", "{w}a", "again"]);
    assert_reply(&c.send(&["UNWATCH"]), b"+OK\r\n");
    c.send(&["MULTI"]);
    c.send(&["SET", "{w}a", "mine"]);
    assert_reply(&c.send(&["EXEC"]), b"*1\r\n+OK\r\n");
    // Commands the proxy answers itself cannot be queued.
    c.send(&["MULTI"]);
    let r = c.send(&["SELECT", "1"]);
    assert!(
        r.starts_with(b"-ERR handle request, command 'SELECT' is not allowed inside MULTI"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    assert!(c.send(&["EXEC"]).starts_with(b"-EXECABORT"));
    // Many clients incrementing through transactions: exact.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let port = p.port;
            std::thread::spawn(move || {
                let mut c = Conn::connect(port).unwrap();
                for _ in 0..200 {
                    c.send(&["MULTI"]);
                    c.send(&["INCR", "{cnt}a"]);
                    c.send(&["INCR", "{cnt}b"]);
                    let r = c.send(&["EXEC"]);
                    assert!(r.starts_with(b"*2\r\n:"), "{}", String::from_utf8_lossy(&r));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_reply(
        &c.send(&["MGET", "{cnt}a", "{cnt}b"]),
        b"*2\r\n$3\r\n800\r\n$3\r\n800\r\n",
    );
}

/// The slot file with `slot` moving from a to b in the given state.
fn file_with(a: u16, b: u16, slot: usize, state: &str) -> String {
    let items: Vec<String> = (0..1024)
        .map(|i| {
            if i != slot || state == "a" {
                format!(r#"{{"id":{i},"backend_addr":"127.0.0.1:{a}","backend_addr_group_id":1}}"#)
            } else if state == "b" {
                format!(r#"{{"id":{i},"backend_addr":"127.0.0.1:{b}","backend_addr_group_id":2}}"#)
            } else {
                format!(
                    r#"{{"id":{i},"backend_addr":"127.0.0.1:{b}","backend_addr_group_id":2,"migrate_from":"127.0.0.1:{a}","migrate_from_group_id":1,"forward_method":1}}"#
                )
            }
        })
        .collect();
    format!("[{}]", items.join(","))
}

fn wait_model(p: &Proxy, slot: usize, backend: u16) {
    let want = format!("\"backend_addr\": \"127.0.0.1:{backend}\"");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let body = tests::proxy::http_get(p.admin, "/proxy/slots");
        let (id1, id2) = (format!("\"id\": {slot}\n"), format!("\"id\": {slot},"));
        if body
            .split('}')
            .any(|obj| (obj.contains(&id1) || obj.contains(&id2)) && obj.contains(&want))
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "slot {slot} not switched: {}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn transactions_need_the_session_password() {
    let a = Server::start(&[]);
    let p = Proxy::start(
        Some(&split_slots(a.port(), a.port(), 512)),
        &["--session_auth=pw"],
    );
    let mut c = p.conn();
    assert_reply(&c.send(&["MULTI"]), b"-NOAUTH Authentication required\r\n");
    assert_reply(
        &c.send(&["SET", "k", "v"]),
        b"-NOAUTH Authentication required\r\n",
    );
    assert_reply(&c.send(&["EXEC"]), b"-NOAUTH Authentication required\r\n");
    assert_reply(
        &c.send(&["WATCH", "k"]),
        b"-NOAUTH Authentication required\r\n",
    );
    assert_reply(&a.conn().send(&["EXISTS", "k"]), b":0\r\n");
    assert_reply(&c.send(&["AUTH", "pw"]), b"+OK\r\n");
    assert_reply(&c.send(&["MULTI"]), b"+OK\r\n");
    // The proxy's own AUTH cannot be queued.
    assert!(
        c.send(&["AUTH", "pw"])
            .starts_with(b"-ERR handle request, command 'AUTH' is not allowed inside MULTI")
    );
    assert!(c.send(&["EXEC"]).starts_with(b"-EXECABORT"));
}

#[test]
fn slot_moves_and_migrations() {
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let slot = protocol::slot::slot_of(b"m");
    let p = Proxy::start(Some(&file_with(a.port(), b.port(), slot, "a")), &[]);
    let mut c = p.conn();
    // WATCH on a, then the slot switches to b: EXEC does not run.
    assert_reply(&c.send(&["SET", "{m}k", "1"]), b"+OK\r\n");
    assert_reply(&c.send(&["WATCH", "{m}k"]), b"+OK\r\n");
    replace_file(&p.slot_file(), &file_with(a.port(), b.port(), slot, "b"));
    wait_model(&p, slot, b.port());
    c.send(&["MULTI"]);
    c.send(&["SET", "{m}k", "2"]);
    assert_reply(&c.send(&["EXEC"]), b"*-1\r\n");
    assert_reply(&b.conn().send(&["EXISTS", "{m}k"]), b":0\r\n");
    assert_reply(&a.conn().send(&["GET", "{m}k"]), b"$1\r\n1\r\n");
    // WATCH, the slot moves, WATCH again: the first WATCH is lost, so EXEC
    // does not run either.
    replace_file(&p.slot_file(), &file_with(a.port(), b.port(), slot, "a"));
    wait_model(&p, slot, a.port());
    assert_reply(&c.send(&["WATCH", "{m}k"]), b"+OK\r\n");
    replace_file(&p.slot_file(), &file_with(a.port(), b.port(), slot, "b"));
    wait_model(&p, slot, b.port());
    assert_reply(&c.send(&["WATCH", "{m}k2"]), b"+OK\r\n");
    c.send(&["MULTI"]);
    c.send(&["SET", "{m}k", "3"]);
    assert_reply(&c.send(&["EXEC"]), b"*-1\r\n");
    assert_reply(&b.conn().send(&["EXISTS", "{m}k"]), b":0\r\n");
    // The slot migrates from a to b (semi-async): the keys of the
    // transaction are moved to b first, and it runs whole there.
    replace_file(&p.slot_file(), &file_with(a.port(), b.port(), slot, "a"));
    wait_model(&p, slot, a.port());
    let mut ca = a.conn();
    ca.send(&["SET", "{m}x", "10"]);
    ca.send(&["RPUSH", "{m}l", "a", "b"]);
    replace_file(&p.slot_file(), &file_with(a.port(), b.port(), slot, "m"));
    wait_model(&p, slot, b.port());
    c.send(&["MULTI"]);
    c.send(&["INCRBY", "{m}x", "5"]);
    c.send(&["LPOP", "{m}l"]);
    c.send(&["INCR", "{m}k"]);
    assert_reply(&c.send(&["EXEC"]), b"*3\r\n:15\r\n$1\r\na\r\n:2\r\n");
    let mut cb = b.conn();
    assert_reply(
        &cb.send(&["MGET", "{m}x", "{m}k"]),
        b"*2\r\n$2\r\n15\r\n$1\r\n2\r\n",
    );
    assert_reply(
        &cb.send(&["LRANGE", "{m}l", "0", "-1"]),
        b"*1\r\n$1\r\nb\r\n",
    );
    assert_reply(&ca.send(&["EXISTS", "{m}x", "{m}l", "{m}k"]), b":0\r\n");
    // WATCH during the migration pulls the key to b and watches it there.
    ca.send(&["SET", "{m}w", "old"]);
    assert_reply(&c.send(&["WATCH", "{m}w"]), b"+OK\r\n");
    assert_reply(&ca.send(&["EXISTS", "{m}w"]), b":0\r\n");
    let mut other = p.conn();
    other.send(&["SET", "{m}w", "theirs"]);
    c.send(&["MULTI"]);
    c.send(&["SET", "{m}w", "mine"]);
    assert_reply(&c.send(&["EXEC"]), b"*-1\r\n");
    assert_reply(&cb.send(&["GET", "{m}w"]), b"$6\r\ntheirs\r\n");
}
