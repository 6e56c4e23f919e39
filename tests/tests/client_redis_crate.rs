//! codis-server used through an ordinary client library: the `redis` crate
//! (async, tokio). Checks what real applications rely on: the connection
//! handshake (the crate pipelines `CLIENT SETINFO` on connect, and `SELECT`
//! for a `/db` URL, and `HELLO 3` for `?protocol=resp3`), plain string
//! commands, expiry, pipelines, a full SCAN iteration over 10k keys, exact
//! INCR totals from concurrent connections, database isolation, atomic
//! pipelines and WATCH-based transactions, pub/sub, and client-side caching
//! through the crate's RESP3 push channel.

use std::collections::HashSet;

use redis::aio::MultiplexedConnection;
use redis::{FromRedisValue, RedisResult, cmd};
use tests::Server;

async fn connect(url: &str) -> MultiplexedConnection {
    let client = redis::Client::open(url).unwrap_or_else(|e| panic!("client for {url}: {e}"));
    client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

async fn q<T: FromRedisValue>(con: &mut MultiplexedConnection, c: &redis::Cmd) -> T {
    let r: RedisResult<T> = c.query_async(con).await;
    r.unwrap_or_else(|e| {
        panic!(
            "{:?}: {e}",
            String::from_utf8_lossy(&c.get_packed_command())
        )
    })
}

#[tokio::test]
async fn basic_commands() {
    let srv = Server::start(&[]);
    let mut con = connect(&srv.url()).await;
    let pong: String = q(&mut con, &cmd("PING")).await;
    assert_eq!(pong, "PONG");
    let () = q(&mut con, cmd("SET").arg("k").arg("v1")).await;
    let v: Option<String> = q(&mut con, cmd("GET").arg("k")).await;
    assert_eq!(v.as_deref(), Some("v1"));
    let missing: Option<String> = q(&mut con, cmd("GET").arg("nope")).await;
    assert_eq!(missing, None);
    let () = q(&mut con, cmd("MSET").arg("a").arg("1").arg("b").arg("2")).await;
    let vals: Vec<Option<String>> = q(&mut con, cmd("MGET").arg("a").arg("nope").arg("b")).await;
    assert_eq!(
        vals,
        vec![Some("1".to_string()), None, Some("2".to_string())]
    );
    let n: i64 = q(&mut con, cmd("INCR").arg("counter")).await;
    assert_eq!(n, 1);
    let n: i64 = q(&mut con, cmd("INCRBY").arg("counter").arg(41)).await;
    assert_eq!(n, 42);
    let f: f64 = q(&mut con, cmd("INCRBYFLOAT").arg("counter").arg(0.5)).await;
    assert_eq!(f, 42.5);
    let ttl: i64 = q(&mut con, cmd("TTL").arg("k")).await;
    assert_eq!(ttl, -1);
    let set: i64 = q(&mut con, cmd("EXPIRE").arg("k").arg(100)).await;
    assert_eq!(set, 1);
    let ttl: i64 = q(&mut con, cmd("TTL").arg("k")).await;
    assert!((1..=100).contains(&ttl), "ttl {ttl}");
    let ttl: i64 = q(&mut con, cmd("TTL").arg("nope")).await;
    assert_eq!(ttl, -2);
    let deleted: i64 = q(&mut con, cmd("DEL").arg("k").arg("a").arg("nope")).await;
    assert_eq!(deleted, 2);
    let v: Option<String> = q(&mut con, cmd("GET").arg("k")).await;
    assert_eq!(v, None);
    // binary-safe values
    let bin: Vec<u8> = (0..=255u8).collect();
    let () = q(&mut con, cmd("SET").arg("bin").arg(&bin[..])).await;
    let back: Vec<u8> = q(&mut con, cmd("GET").arg("bin")).await;
    assert_eq!(back, bin);
    // server errors come back as errors, and the connection stays usable
    let () = q(&mut con, cmd("SET").arg("s").arg("abc")).await;
    let e = cmd("INCR")
        .arg("s")
        .query_async::<i64>(&mut con)
        .await
        .expect_err("INCR on a non-integer");
    assert!(
        e.to_string().contains("not an integer or out of range"),
        "{e}"
    );
    let e = cmd("NOSUCHCMD")
        .query_async::<()>(&mut con)
        .await
        .expect_err("unknown command");
    assert!(e.to_string().contains("unknown command"), "{e}");
    let pong: String = q(&mut con, &cmd("PING")).await;
    assert_eq!(pong, "PONG");
}

#[tokio::test]
async fn pipelines() {
    let srv = Server::start(&[]);
    let mut con = connect(&srv.url()).await;
    let mut p = redis::pipe();
    for i in 0..1000 {
        p.cmd("SET").arg(format!("p:{i}")).arg(i).ignore();
    }
    for i in 0..1000 {
        p.cmd("GET").arg(format!("p:{i}"));
    }
    let got: Vec<i64> = p
        .query_async(&mut con)
        .await
        .unwrap_or_else(|e| panic!("pipeline: {e}"));
    assert_eq!(got, (0..1000).collect::<Vec<i64>>());
    // an atomic (MULTI/EXEC-free) pipeline mixing types
    let (a, b, c): (i64, i64, Option<String>) = redis::pipe()
        .cmd("INCR")
        .arg("pc")
        .cmd("INCRBY")
        .arg("pc")
        .arg(10)
        .cmd("GET")
        .arg("p:7")
        .query_async(&mut con)
        .await
        .unwrap_or_else(|e| panic!("pipeline: {e}"));
    assert_eq!((a, b, c.as_deref()), (1, 11, Some("7")));
    let dbsize: i64 = q(&mut con, &cmd("DBSIZE")).await;
    assert_eq!(dbsize, 1001);
}

#[tokio::test]
async fn scan_finds_every_key() {
    const N: usize = 10_000;
    let srv = Server::start(&[]);
    let mut con = connect(&srv.url()).await;
    for chunk in (0..N).collect::<Vec<_>>().chunks(500) {
        let mut c = cmd("MSET");
        for i in chunk {
            c.arg(format!("key:{i}")).arg(i);
        }
        let () = q(&mut con, &c).await;
    }
    let dbsize: i64 = q(&mut con, &cmd("DBSIZE")).await;
    assert_eq!(dbsize as usize, N);

    // Manual cursor loop (bounded: a correct server needs far fewer calls).
    let mut seen = HashSet::new();
    let mut cursor = "0".to_string();
    let mut calls = 0;
    loop {
        let (next, keys): (String, Vec<String>) =
            q(&mut con, cmd("SCAN").arg(&cursor).arg("COUNT").arg(100)).await;
        seen.extend(keys);
        calls += 1;
        cursor = next;
        if cursor == "0" {
            break;
        }
        assert!(calls < 20 * N, "SCAN did not terminate");
    }
    let missing: Vec<usize> = (0..N)
        .filter(|i| !seen.contains(&format!("key:{i}")))
        .collect();
    assert!(
        missing.is_empty(),
        "SCAN missed {} keys, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert_eq!(seen.len(), N, "SCAN returned keys that do not exist");

    // The crate's own iterator, with MATCH.
    let mut it = redis::AsyncCommands::scan_match::<_, String>(&mut con, "key:1*")
        .await
        .unwrap_or_else(|e| panic!("scan_match: {e}"));
    let mut matched = HashSet::new();
    while let Some(k) = it.next_item().await {
        matched.insert(k.unwrap_or_else(|e| panic!("scan item: {e}")));
    }
    drop(it);
    let expected: HashSet<String> = (0..N)
        .map(|i| format!("key:{i}"))
        .filter(|k| k.starts_with("key:1"))
        .collect();
    assert_eq!(matched, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_incr_is_exact() {
    const CONNS: usize = 8;
    const PER: usize = 500;
    let srv = Server::start(&[]);
    let url = srv.url();
    let mut tasks = Vec::new();
    for t in 0..CONNS {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            // separate clients, so separate TCP connections
            let mut con = connect(&url).await;
            for i in 0..PER {
                if i % 50 == 0 {
                    // batches through pipelines too
                    let r: Vec<i64> = redis::pipe()
                        .cmd("INCR")
                        .arg("shared")
                        .cmd("INCRBY")
                        .arg(format!("own:{t}"))
                        .arg(1)
                        .query_async(&mut con)
                        .await
                        .unwrap_or_else(|e| panic!("pipe: {e}"));
                    assert_eq!(r.len(), 2);
                } else {
                    let _: i64 = q(&mut con, cmd("INCR").arg("shared")).await;
                    let _: i64 = q(&mut con, cmd("INCRBY").arg(format!("own:{t}")).arg(1)).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap_or_else(|e| panic!("task: {e}"));
    }
    let mut con = connect(&url).await;
    let total: i64 = q(&mut con, cmd("GET").arg("shared")).await;
    assert_eq!(total as usize, CONNS * PER);
    for t in 0..CONNS {
        let own: i64 = q(&mut con, cmd("GET").arg(format!("own:{t}"))).await;
        assert_eq!(own as usize, PER);
    }
}

#[tokio::test]
async fn select_isolates_databases() {
    let srv = Server::start(&[]);
    let mut db0 = connect(&srv.url()).await;
    let mut db5 = connect(&format!("redis://127.0.0.1:{}/5", srv.port())).await;
    let () = q(&mut db5, cmd("SET").arg("only5").arg("x")).await;
    let () = q(&mut db0, cmd("SET").arg("only0").arg("y")).await;
    let v: Option<String> = q(&mut db0, cmd("GET").arg("only5")).await;
    assert_eq!(v, None);
    let v: Option<String> = q(&mut db5, cmd("GET").arg("only0")).await;
    assert_eq!(v, None);
    let v: Option<String> = q(&mut db5, cmd("GET").arg("only5")).await;
    assert_eq!(v.as_deref(), Some("x"));
    let n: i64 = q(&mut db5, &cmd("DBSIZE")).await;
    assert_eq!(n, 1);
    let () = q(&mut db5, &cmd("FLUSHDB")).await;
    let v: Option<String> = q(&mut db0, cmd("GET").arg("only0")).await;
    assert_eq!(v.as_deref(), Some("y"));
    let e = cmd("SELECT")
        .arg(16)
        .query_async::<()>(&mut db0)
        .await
        .expect_err("db 16 is out of range");
    assert!(e.to_string().contains("DB index is out of range"), "{e}");
}

#[tokio::test]
async fn resp3_connection() {
    let srv = Server::start(&[]);
    let mut con = connect(&format!("{}?protocol=resp3", srv.url())).await;
    let hello: redis::Value = q(&mut con, cmd("HELLO").arg(3)).await;
    let redis::Value::Map(pairs) = hello else {
        panic!("HELLO 3 is not a map: {hello:?}")
    };
    let proto = pairs
        .iter()
        .find(|(k, _)| matches!(k, redis::Value::BulkString(b) if b == b"proto"));
    assert!(
        matches!(proto, Some((_, redis::Value::Int(3)))),
        "{pairs:?}"
    );
    let () = q(&mut con, cmd("SET").arg("k").arg("v")).await;
    let v: Option<String> = q(&mut con, cmd("GET").arg("k")).await;
    assert_eq!(v.as_deref(), Some("v"));
    let nil: redis::Value = q(&mut con, cmd("GET").arg("nope")).await;
    assert_eq!(nil, redis::Value::Nil);
    let vals: Vec<Option<String>> = q(&mut con, cmd("MGET").arg("k").arg("nope")).await;
    assert_eq!(vals, vec![Some("v".to_string()), None]);
    // CONFIG GET answers a map in RESP3
    let cfg: redis::Value = q(&mut con, cmd("CONFIG").arg("GET").arg("databases")).await;
    assert!(
        matches!(cfg, redis::Value::Map(ref m) if m.len() == 1),
        "{cfg:?}"
    );
}

/// redis-py-style transactions: an atomic pipeline (MULTI … EXEC sent in
/// one write) answers every command's result, and the crate's optimistic
/// `transaction` helper (WATCH, read, MULTI … EXEC, retry while a watched key
/// changed) gives exact totals while another connection keeps writing.
#[tokio::test]
async fn transactions() {
    let srv = Server::start(&[]);
    let mut con = connect(&srv.url()).await;
    let (a, b, l): (i64, i64, i64) = redis::pipe()
        .atomic()
        .incr("a{t}", 1)
        .incr("b{t}", 2)
        .rpush("l{t}", "x")
        .query_async(&mut con)
        .await
        .expect("atomic pipeline");
    assert_eq!((a, b, l), (1, 2, 1));
    // A queued command that fails at run time does not undo the others.
    let r: RedisResult<(i64, i64)> = redis::pipe()
        .atomic()
        .incr("a{t}", 1)
        .incr("l{t}", 1)
        .query_async(&mut con)
        .await;
    assert!(
        r.is_err(),
        "WRONGTYPE inside EXEC surfaces as an error: {r:?}"
    );
    let a: i64 = q(&mut con, cmd("GET").arg("a{t}")).await;
    assert_eq!(a, 2);

    // Check-and-set with WATCH from two threads (the sync API).
    let url = srv.url();
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let client = redis::Client::open(url.as_str()).unwrap();
                let mut c = client.get_connection().unwrap();
                for _ in 0..100 {
                    let _: () = redis::transaction(&mut c, &["cas"], |c, pipe| {
                        let v: Option<i64> = redis::cmd("GET").arg("cas").query(c)?;
                        pipe.set("cas", v.unwrap_or(0) + 1).ignore().query(c)
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let total: i64 = q(&mut con, cmd("GET").arg("cas")).await;
    assert_eq!(total, 200, "every WATCHed increment applied exactly once");
}

/// Pub/sub through the crate's subscriber API: messages on a channel and a
/// pattern arrive in publish order, and PUBLISH counts the receivers.
#[tokio::test]
async fn pubsub() {
    let srv = Server::start(&[]);
    let url = srv.url();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let sub = std::thread::spawn(move || {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut c = client.get_connection().unwrap();
        let mut ps = c.as_pubsub();
        ps.subscribe("news").unwrap();
        ps.psubscribe("ne*").unwrap();
        ready_tx.send(()).unwrap();
        let mut got = Vec::new();
        while got.len() < 6 {
            let m = ps.get_message().unwrap();
            let payload: String = m.get_payload().unwrap();
            got.push((m.get_channel_name().to_string(), m.from_pattern(), payload));
        }
        got
    });
    ready_rx.recv().unwrap();
    let mut con = connect(&srv.url()).await;
    for i in 0..3 {
        let n: i64 = q(&mut con, cmd("PUBLISH").arg("news").arg(format!("m{i}"))).await;
        assert_eq!(n, 2, "one channel and one pattern subscription");
    }
    let got = sub.join().unwrap();
    let want: Vec<(String, bool, String)> = (0..3)
        .flat_map(|i| {
            [
                ("news".to_string(), false, format!("m{i}")),
                ("news".to_string(), true, format!("m{i}")),
            ]
        })
        .collect();
    assert_eq!(got, want);
    let n: i64 = q(&mut con, cmd("PUBLISH").arg("nobody").arg("x")).await;
    assert_eq!(n, 0);
}

/// A RESP3 connection of the crate with a push channel.
async fn connect_push(
    url: &str,
) -> (
    MultiplexedConnection,
    tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>,
) {
    let client = redis::Client::open(format!("{url}?protocol=resp3").as_str())
        .unwrap_or_else(|e| panic!("client for {url}: {e}"));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let config = redis::AsyncConnectionConfig::new().set_push_sender(tx);
    let con = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    (con, rx)
}

async fn next_push(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>,
) -> redis::PushInfo {
    tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
        .await
        .expect("an invalidation push within 5s")
        .expect("push channel open")
}

fn keys_of(push: &redis::PushInfo) -> Option<Vec<String>> {
    assert_eq!(push.kind, redis::PushKind::Invalidate, "{push:?}");
    match push.data.as_slice() {
        [redis::Value::Array(keys)] => Some(
            keys.iter()
                .map(|k| match k {
                    redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                    other => panic!("key {other:?}"),
                })
                .collect(),
        ),
        [redis::Value::Nil] => None,
        other => panic!("invalidate data {other:?}"),
    }
}

/// Client-side caching through the crate's RESP3 push channel: a key read
/// with tracking on is invalidated when another connection writes it (once),
/// BCAST reports every key written under a prefix, FLUSHALL invalidates
/// everything (a null).
#[tokio::test]
async fn client_side_caching_pushes() {
    let srv = Server::start(&[]);
    let (mut con, mut rx) = connect_push(&srv.url()).await;
    let mut other = connect(&srv.url()).await;
    let () = q(&mut con, cmd("CLIENT").arg("TRACKING").arg("ON")).await;
    let () = q(&mut other, cmd("SET").arg("k").arg("v1")).await;
    let v: String = q(&mut con, cmd("GET").arg("k")).await;
    assert_eq!(v, "v1");
    let () = q(&mut other, cmd("SET").arg("k").arg("v2")).await;
    let push = next_push(&mut rx).await;
    assert_eq!(keys_of(&push), Some(vec!["k".to_string()]));
    // Forgotten after one invalidation: the next change says nothing, and
    // the FLUSHALL null is the next push.
    let () = q(&mut other, cmd("SET").arg("k").arg("v3")).await;
    let () = q(&mut other, &cmd("FLUSHALL")).await;
    assert_eq!(keys_of(&next_push(&mut rx).await), None);
    let () = q(&mut con, cmd("CLIENT").arg("TRACKING").arg("OFF")).await;
    let bcast = cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .arg("BCAST")
        .arg("PREFIX")
        .arg("user:")
        .clone();
    let () = q(&mut con, &bcast).await;
    let mset = cmd("MSET")
        .arg("user:2")
        .arg("a")
        .arg("x")
        .arg("b")
        .arg("user:1")
        .arg("c")
        .clone();
    let () = q(&mut other, &mset).await;
    assert_eq!(
        keys_of(&next_push(&mut rx).await),
        Some(vec!["user:1".to_string(), "user:2".to_string()])
    );
    assert!(rx.try_recv().is_err(), "one message for the batch");
}

/// A local cache kept by invalidation pushes while another connection keeps
/// writing (several executor threads): once the writer stops and the pushes
/// are drained, every cached value is the server's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_cache_stays_coherent() {
    let srv = Server::start(&["--io-threads", "4"]);
    let (mut con, mut rx) = connect_push(&srv.url()).await;
    let () = q(&mut con, cmd("CLIENT").arg("TRACKING").arg("ON")).await;
    let keys: Vec<String> = (0..8).map(|i| format!("key:{i}")).collect();
    let writer = {
        let url = srv.url();
        let keys = keys.clone();
        tokio::spawn(async move {
            let mut w = connect(&url).await;
            for n in 0..3000u32 {
                let k = &keys[(n as usize * 7 + n as usize / 3) % keys.len()];
                let () = q(&mut w, cmd("SET").arg(k).arg(n)).await;
            }
        })
    };
    let mut cache: std::collections::HashMap<String, Option<String>> = Default::default();
    let mut reads = 0u32;
    let drain = |cache: &mut std::collections::HashMap<String, Option<String>>,
                 rx: &mut tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>| {
        while let Ok(p) = rx.try_recv() {
            match keys_of(&p) {
                Some(ks) => ks.iter().for_each(|k| {
                    cache.remove(k);
                }),
                None => cache.clear(),
            }
        }
    };
    while !writer.is_finished() {
        for k in &keys {
            drain(&mut cache, &mut rx);
            if !cache.contains_key(k) {
                let v: Option<String> = q(&mut con, cmd("GET").arg(k)).await;
                cache.insert(k.clone(), v);
                reads += 1;
            }
        }
    }
    writer.await.unwrap();
    // Quiet: every invalidation of the last writes has arrived.
    let _: String = q(&mut con, &cmd("PING")).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    drain(&mut cache, &mut rx);
    let mut check = connect(&srv.url()).await;
    for (k, cached) in &cache {
        let now: Option<String> = q(&mut check, cmd("GET").arg(k)).await;
        assert_eq!(
            cached, &now,
            "{k} is stale in the cache after {reads} reads"
        );
    }
    assert!(
        reads > keys.len() as u32,
        "the cache was invalidated and refilled"
    );
}
