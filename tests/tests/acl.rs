//! ACL users on codis-server, end to end: `AUTH user pass` from the
//! `redis` crate and redis-cli `--user`; NOPERM for commands, keys and
//! channels (with the ACL LOG entries and INFO counters); MULTI refused at
//! queue time and at EXEC when the rules changed; scripts; requirepass as
//! the default user's password; `user` lines in the configuration; DELUSER
//! closing the user's connections; `@codis`. The replies themselves are
//! compared with redis-server 7.0.15 in tests/scripts/acl.txt.

use std::process::Command;
use std::time::Duration;

use tests::{Conn, Server};

fn info_u64(c: &mut Conn, name: &str) -> u64 {
    tests::repl::int_field(c, "stats", name) as u64
}

#[test]
fn users_rules_and_refusals() {
    let s = Server::start(&[]);
    let mut admin = s.conn();
    assert_eq!(
        admin.cmd("ACL SETUSER app on >secret ~app:* %R~shared:* &news +@read +@write -flushall +publish +multi +exec +eval +acl|whoami"),
        b"+OK\r\n"
    );
    let mut c = s.conn();
    assert_eq!(
        c.cmd("AUTH app wrong"),
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(c.cmd("AUTH app secret"), b"+OK\r\n");
    assert_eq!(c.cmd("ACL WHOAMI"), b"$3\r\napp\r\n");
    assert_eq!(c.cmd("SET app:1 v"), b"+OK\r\n");
    assert_eq!(c.cmd("GET shared:x"), b"$-1\r\n");
    assert_eq!(
        c.cmd("SET shared:x v"),
        b"-NOPERM this user has no permissions to access one of the keys used as arguments\r\n"
    );
    assert_eq!(
        c.cmd("FLUSHALL"),
        b"-NOPERM this user has no permissions to run the 'flushall' command\r\n"
    );
    assert_eq!(
        c.cmd("CONFIG GET maxmemory"),
        b"-NOPERM this user has no permissions to run the 'config|get' command\r\n"
    );
    assert_eq!(c.cmd("PUBLISH news hi"), b":0\r\n");
    assert_eq!(
        c.cmd("PUBLISH sport hi"),
        b"-NOPERM this user has no permissions to access one of the channels used as arguments\r\n"
    );
    // MULTI: a denied command is refused while queuing, EXEC aborts.
    assert_eq!(c.cmd("MULTI"), b"+OK\r\n");
    assert!(c.cmd("DEL other").starts_with(b"-NOPERM"));
    assert!(c.cmd("EXEC").starts_with(b"-EXECABORT"));
    // Rules changed between queuing and EXEC: that command fails alone.
    assert_eq!(c.cmd("MULTI"), b"+OK\r\n");
    assert_eq!(c.cmd("SET app:2 v"), b"+QUEUED\r\n");
    assert_eq!(c.cmd("GET app:1"), b"+QUEUED\r\n");
    assert_eq!(admin.cmd("ACL SETUSER app -set"), b"+OK\r\n");
    let r = c.cmd("EXEC");
    let text = String::from_utf8_lossy(&r);
    assert!(
        text.starts_with("*2\r\n-NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call.")
            && text.ends_with("$1\r\nv\r\n"),
        "{text}"
    );
    // A script's redis.call runs under the caller's rules.
    let r = c.send(&["EVAL", "return redis.call('GET', 'other')", "0"]);
    assert!(
        r.starts_with(b"-ERR The user executing the script can't access at least one of the keys"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    // What was denied is counted and logged.
    assert!(info_u64(&mut admin, "acl_access_denied_key") >= 3);
    assert!(info_u64(&mut admin, "acl_access_denied_cmd") >= 2);
    assert_eq!(info_u64(&mut admin, "acl_access_denied_channel"), 1);
    assert_eq!(info_u64(&mut admin, "acl_access_denied_auth"), 1);
    let log = admin.value("ACL LOG");
    let entries = log.as_array().unwrap();
    let first = entries[0].as_array().unwrap();
    assert_eq!(first[3].as_text().as_deref(), Some("key"));
    assert_eq!(first[5].as_text().as_deref(), Some("lua"));
    assert_eq!(first[7].as_text().as_deref(), Some("other"));
    assert_eq!(first[9].as_text().as_deref(), Some("app"));
    assert!(first[13].as_text().unwrap().contains("user=app"));
    // CLIENT LIST shows the user; CLIENT KILL USER finds it.
    let list = admin.value("CLIENT LIST").as_text().unwrap();
    assert!(list.contains("user=app"), "{list}");
    // DELUSER closes the user's connections.
    assert_eq!(admin.cmd("ACL DELUSER app"), b":1\r\n");
    c.set_timeout(Duration::from_secs(5));
    assert!(
        c.try_send(&["PING"]).is_err(),
        "the deleted user's connection stays open"
    );
}

#[test]
fn requirepass_is_the_default_users_password() {
    let s = Server::start(&["--requirepass", "pw"]);
    let mut c = s.conn();
    assert_eq!(c.cmd("GET x"), b"-NOAUTH Authentication required.\r\n");
    assert_eq!(c.cmd("AUTH pw"), b"+OK\r\n");
    let list = c.value("ACL LIST").as_text().unwrap_or_default();
    let line = c.value("ACL LIST");
    let line = line.as_array().unwrap()[0].as_text().unwrap();
    assert!(
        line.starts_with("user default on #") && line.ends_with(" ~* &* +@all"),
        "{line} {list}"
    );
    // CONFIG SET requirepass "" opens the default user again.
    assert_eq!(c.cmd("CONFIG SET requirepass \"\""), b"+OK\r\n");
    let mut d = s.conn();
    assert_eq!(d.cmd("GET x"), b"$-1\r\n");
    assert_eq!(
        d.value("ACL LIST").as_array().unwrap()[0]
            .as_text()
            .as_deref(),
        Some("user default on nopass ~* &* +@all")
    );
    // A disabled default user: new connections must AUTH as someone else.
    assert_eq!(c.cmd("ACL SETUSER admin on >a +@all ~* &*"), b"+OK\r\n");
    assert_eq!(c.cmd("ACL SETUSER default off"), b"+OK\r\n");
    let mut e = s.conn();
    assert_eq!(e.cmd("GET x"), b"-NOAUTH Authentication required.\r\n");
    assert_eq!(
        e.cmd("HELLO 3 AUTH default x"),
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert!(e.cmd("HELLO 3 AUTH admin a").starts_with(b"%7\r\n"));
    assert_eq!(e.cmd("GET x"), b"_\r\n");
    c.cmd("ACL SETUSER default on");
}

#[test]
fn users_from_the_configuration_and_real_clients() {
    let s = Server::start(&[
        "--user",
        "reader",
        "on",
        ">rpw",
        "~*",
        "&*",
        "-@all",
        "+@read",
        "+@connection",
    ]);
    let mut c = s.conn();
    assert_eq!(c.cmd("SET k v"), b"+OK\r\n");
    // redis-cli --user / --pass.
    if let Some(cli) = tests::redis_tool("redis-cli") {
        let out = Command::new(cli)
            .args([
                "-p",
                &s.port().to_string(),
                "--user",
                "reader",
                "--pass",
                "rpw",
                "--no-auth-warning",
            ])
            .args(["GET", "k"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "v");
    }
    // The redis crate: AUTH user pass from the URL.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = format!("redis://reader:rpw@127.0.0.1:{}/", s.port());
        let client = redis::Client::open(url).unwrap();
        let mut con = client.get_multiplexed_async_connection().await.unwrap();
        let v: String = redis::cmd("GET")
            .arg("k")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(v, "v");
        let e: redis::RedisResult<()> = redis::cmd("SET")
            .arg("k")
            .arg("w")
            .query_async(&mut con)
            .await;
        let e = e.unwrap_err();
        assert_eq!(e.code(), Some("NOPERM"), "{e}");
    });
    // A bad rule in the configuration stops the start.
    let err = Server::try_start(&["--user", "bad", "+nosuchcommand"]);
    assert!(err.is_err());
    // aclfile cannot be combined with `user` lines, and a missing file
    // stops the start.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("u.acl"), "user a on nopass +@all ~*\n").unwrap();
    let file = dir.path().join("u.acl").display().to_string();
    assert!(Server::try_start(&["--aclfile", &file, "--user", "b", "on"]).is_err());
    assert!(Server::try_start(&["--aclfile", "/nonexistent-codis/u.acl"]).is_err());
}

#[test]
fn aclfile_save_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.acl");
    std::fs::write(
        &path,
        "user default on nopass ~* &* +@all\nuser alice on >pw ~a* +get\n",
    )
    .unwrap();
    let file = path.display().to_string();
    let s = Server::start(&["--aclfile", &file]);
    let mut c = s.conn();
    assert_eq!(
        c.value("ACL USERS").as_array().unwrap().len(),
        2,
        "users from the file"
    );
    let mut a = s.conn();
    assert_eq!(a.cmd("AUTH alice pw"), b"+OK\r\n");
    assert_eq!(c.cmd("ACL SETUSER carol on nopass"), b"+OK\r\n");
    assert_eq!(c.cmd("ACL SAVE"), b"+OK\r\n");
    let saved = std::fs::read_to_string(&path).unwrap();
    assert!(
        saved.contains("user carol on nopass resetchannels -@all\n"),
        "{saved}"
    );
    // A bad file changes nothing, and says every problem.
    std::fs::write(&path, "user alice on +nosuch\nbogus\n").unwrap();
    let r = String::from_utf8_lossy(&c.cmd("ACL LOAD")).into_owned();
    assert!(
        r.starts_with(&format!(
            "-ERR {file}:1: Error in applying operation '+nosuch'"
        )) && r.contains(&format!("{file}:2 should start with user keyword"))
            && r.ends_with("no change to the previously active ACL rules was performed\r\n"),
        "{r}"
    );
    assert_eq!(c.value("ACL USERS").as_array().unwrap().len(), 3);
    // A good one replaces every user; their connections are closed.
    std::fs::write(&path, saved).unwrap();
    assert_eq!(c.cmd("ACL LOAD"), b"+OK\r\n");
    a.set_timeout(Duration::from_secs(5));
    assert!(
        a.try_send(&["PING"]).is_err(),
        "a replaced user's connection stays open"
    );
    assert_eq!(c.cmd("PING"), b"+PONG\r\n");
}

#[test]
fn codis_commands_have_their_category() {
    let s = Server::start(&[]);
    let mut c = s.conn();
    let cat = c.value("ACL CAT codis");
    let names: Vec<String> = cat
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_text().unwrap())
        .collect();
    assert!(
        names.contains(&"slotsmgrttagslot-async".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"slotsinfo".to_string()));
    let dangerous = c.value("ACL CAT dangerous");
    let d: Vec<String> = dangerous
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_text().unwrap())
        .collect();
    assert!(d.contains(&"slotsdel".to_string()) && !d.contains(&"slotsinfo".to_string()));
    // An operator without @codis cannot move slots.
    c.cmd("ACL SETUSER ops on nopass ~* &* +@all -@codis");
    let mut o = s.conn();
    assert_eq!(o.cmd("AUTH ops x"), b"+OK\r\n");
    assert_eq!(
        o.cmd("SLOTSINFO"),
        b"-NOPERM this user has no permissions to run the 'slotsinfo' command\r\n"
    );
    assert_eq!(o.cmd("GET k"), b"$-1\r\n");
}

#[test]
fn migrations_authenticate_as_the_configured_user() {
    // The target lets only `mover` in, with just the migration commands.
    let target = Server::start(&[
        "--user", "default", "off", "--user", "mover", "on", ">mpw", "~*", "&*", "-@all",
        "+@codis", "+select", "+dbsize",
    ]);
    let source = Server::start(&["--migration-user", "mover", "--migration-password", "mpw"]);
    let mut s = source.conn();
    // A tag's keys moved with the async command, another key with the sync one.
    for i in 0..20 {
        s.cmd(&format!("SET {{t}}:{i} v{i}"));
    }
    s.cmd("SET {u}:x v");
    let slot_of = |s: &mut Conn, k: &str| {
        s.value(&format!("SLOTSHASHKEY {k}")).as_array().unwrap()[0]
            .as_int()
            .unwrap()
    };
    let (slot, slot_u) = (slot_of(&mut s, "{t}"), slot_of(&mut s, "{u}"));
    let port = target.port().to_string();
    let r = s.value(&format!(
        "SLOTSMGRTTAGSLOT-ASYNC 127.0.0.1 {port} 3000 200 33554432 {slot} 100"
    ));
    let r = r.as_array().unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!(r[0].as_int(), Some(20), "{r:?}");
    let r = s.value(&format!("SLOTSMGRTSLOT 127.0.0.1 {port} 3000 {slot_u}"));
    assert_eq!(r.as_array().unwrap()[0].as_int(), Some(1), "{r:?}");
    let mut t = target.conn();
    assert_eq!(t.cmd("AUTH mover mpw"), b"+OK\r\n");
    assert!(
        t.cmd("GET {t}:1").starts_with(b"-NOPERM"),
        "mover only migrates"
    );
    assert_eq!(t.value("DBSIZE").as_int(), Some(21));
    assert_eq!(s.value("DBSIZE").as_int(), Some(0));
    // A wrong password (a source with no cached connection): the move
    // fails and the key stays on the source.
    let bad = Server::start(&["--migration-user", "mover", "--migration-password", "wrong"]);
    let mut b = bad.conn();
    b.cmd("SET {w}:x v");
    let slot_w = slot_of(&mut b, "{w}");
    let r = b.cmd(&format!(
        "SLOTSMGRTTAGSLOT-ASYNC 127.0.0.1 {port} 3000 200 33554432 {slot_w} 100"
    ));
    assert!(r.starts_with(b"-"), "{}", String::from_utf8_lossy(&r));
    assert_eq!(b.value("DBSIZE").as_int(), Some(1));
}

/// codis-proxy without `session_auth` passes `AUTH user pass` (and
/// `HELLO … AUTH`) through: the servers check the credentials, and the
/// session's requests then go on that user's own backend connections, so
/// every server applies the user's rules (pooled, blocking and transaction
/// connections alike). A refused AUTH leaves the session as it was; RESET
/// goes back to the proxy's own connections.
#[test]
fn proxy_passes_users_through() {
    use tests::proxy::{Proxy, split_slots};
    let users = [
        "--requirepass",
        "ppw",
        "--user",
        "reader",
        "on",
        ">rpw",
        "~*",
        "-@all",
        "+@read",
        "+@connection",
        "--user",
        "writer",
        "on",
        ">wpw",
        "~app:*",
        "+@all",
    ];
    let a = Server::start(&users);
    let b = Server::start(&users);
    let p = Proxy::start(
        Some(&split_slots(a.port(), b.port(), 512)),
        &["--product_auth", "ppw"],
    );
    // Twenty keys: some on each server.
    let keys: Vec<String> = (0..20).map(|i| format!("app:{i}")).collect();
    let mut c = p.conn();
    for k in &keys {
        assert_eq!(c.send(&["SET", k, "v"]), b"+OK\r\n");
    }
    // A wrong password: the server's error, and the session keeps writing
    // as the proxy's user.
    let r = c.send(&["AUTH", "reader", "nope"]);
    assert!(
        r.starts_with(b"-WRONGPASS"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    assert_eq!(c.send(&["SET", "app:x", "1"]), b"+OK\r\n");
    // As reader: reads everywhere, every write refused by its server.
    assert_eq!(c.send(&["AUTH", "reader", "rpw"]), b"+OK\r\n");
    for k in &keys {
        assert_eq!(c.send(&["GET", k]), b"$1\r\nv\r\n");
        let r = c.send(&["SET", k, "w"]);
        assert!(r.starts_with(b"-NOPERM"), "{}", String::from_utf8_lossy(&r));
    }
    let info = String::from_utf8_lossy(&c.send(&["CLIENT", "INFO"])).to_string();
    assert!(info.contains(" user=reader "), "{info}");
    // A transaction runs on a connection of the user too.
    assert_eq!(c.send(&["MULTI"]), b"+OK\r\n");
    assert_eq!(c.send(&["SET", "app:1", "t"]), b"+QUEUED\r\n");
    let r = c.send(&["EXEC"]);
    assert!(r.starts_with(b"-"), "{}", String::from_utf8_lossy(&r));
    // RESET: the proxy's own connections again.
    assert_eq!(c.send(&["RESET"]), b"+RESET\r\n");
    assert_eq!(c.send(&["SET", "app:1", "r"]), b"+OK\r\n");
    // HELLO 3 AUTH as writer: only app:* keys, blocking commands included.
    let mut w = p.conn();
    let r = w.send(&["HELLO", "3", "AUTH", "writer", "wpw"]);
    assert!(r.starts_with(b"%"), "{}", String::from_utf8_lossy(&r));
    assert_eq!(w.send(&["SET", "app:2", "w"]), b"+OK\r\n");
    let r = w.send(&["SET", "other", "w"]);
    assert!(r.starts_with(b"-NOPERM"), "{}", String::from_utf8_lossy(&r));
    let r = w.send(&["BLPOP", "other", "0.1"]);
    assert!(r.starts_with(b"-NOPERM"), "{}", String::from_utf8_lossy(&r));
    assert_eq!(w.send(&["RPUSH", "app:l", "x"]), b":1\r\n");
    assert_eq!(
        w.send(&["BLPOP", "app:l", "1"]),
        b"*2\r\n$5\r\napp:l\r\n$1\r\nx\r\n"
    );
    let r = w.send(&["HELLO", "3", "AUTH", "writer", "bad"]);
    assert!(
        r.starts_with(b"-WRONGPASS"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    // redis-cli --user through the proxy.
    if let Some(cli) = tests::redis_tool("redis-cli") {
        let out = Command::new(cli)
            .args([
                "-p",
                &p.port.to_string(),
                "--user",
                "reader",
                "--pass",
                "rpw",
            ])
            .args(["--no-auth-warning", "SET", "app:3", "x"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("NOPERM"), "{text}");
    }
    // The redis crate: credentials from the URL.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = format!("redis://writer:wpw@127.0.0.1:{}/", p.port);
        let client = redis::Client::open(url).unwrap();
        let mut con = client.get_multiplexed_async_connection().await.unwrap();
        let v: String = redis::cmd("GET")
            .arg("app:2")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(v, "w");
        let e: redis::RedisResult<()> = redis::cmd("GET").arg("other").query_async(&mut con).await;
        assert_eq!(e.unwrap_err().code(), Some("NOPERM"));
    });
    // The writes refused above changed nothing.
    let mut d = p.conn();
    for k in keys
        .iter()
        .filter(|k| !["app:1", "app:2"].contains(&k.as_str()))
    {
        assert_eq!(d.send(&["GET", k]), b"$1\r\nv\r\n", "{k}");
    }
}
