//! Pub/sub through codis-proxy (issue 14): SUBSCRIBE/PSUBSCRIBE meet
//! PUBLISH on the pub/sub server (slot 0's owner), SSUBSCRIBE meets
//! SPUBLISH on the shard channel's owner; the subscribed connection is
//! relayed with the replies a direct server gives; after the last
//! unsubscribe the session routes by slot again; subscriptions follow
//! their slot to a new owner.

use std::time::{Duration, Instant};

use tests::proxy::{Proxy, http_get, replace_file, split_slots};
use tests::{Conn, Server, assert_reply};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn subscribe_publish_and_back() {
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let direct = Server::start(&[]);
    let p = Proxy::start(Some(&split_slots(a.port(), b.port(), 512)), &[]);
    let mut sub = p.conn();
    let mut dsub = direct.conn();
    let mut publ = p.conn();
    // Replies as a direct server gives them.
    for cmd in [
        &["SUBSCRIBE", "news", "sport"][..],
        &["PSUBSCRIBE", "n*"],
        &["PING"],
        &["GET", "x"],
    ] {
        let want_n = if cmd[0] == "SUBSCRIBE" { 2 } else { 1 };
        let mut c_p = Vec::new();
        let mut c_d = Vec::new();
        sub.write_raw(&tests::resp::encode_command(cmd)).unwrap();
        dsub.write_raw(&tests::resp::encode_command(cmd)).unwrap();
        for _ in 0..want_n {
            c_p.push(text(&sub.read_reply().unwrap()));
            c_d.push(text(&dsub.read_reply().unwrap()));
        }
        assert_eq!(c_p, c_d, "{cmd:?}");
    }
    // Messages through the pub/sub server.
    assert_reply(&publ.send(&["PUBLISH", "news", "hello"]), b":2\r\n");
    assert_eq!(
        text(&sub.read_reply().unwrap()),
        "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n"
    );
    assert_eq!(
        text(&sub.read_reply().unwrap()),
        "*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$5\r\nhello\r\n"
    );
    assert_reply(
        &publ.send(&["PUBSUB", "NUMSUB", "news"]),
        b"*2\r\n$4\r\nnews\r\n:1\r\n",
    );
    assert_reply(&publ.send(&["PUBSUB", "NUMPAT"]), b":1\r\n");
    // Unsubscribing everything returns the session to routing by slot.
    sub.write_raw(&tests::resp::encode_command(&["UNSUBSCRIBE"]))
        .unwrap();
    assert!(text(&sub.read_reply().unwrap()).contains("unsubscribe"));
    assert!(text(&sub.read_reply().unwrap()).contains("unsubscribe"));
    assert_eq!(
        text(&sub.send(&["PUNSUBSCRIBE"])),
        "*3\r\n$12\r\npunsubscribe\r\n$2\r\nn*\r\n:0\r\n"
    );
    for i in 0..50 {
        let k = format!("k{i}");
        assert_reply(&sub.send(&["SET", &k, "v"]), b"+OK\r\n");
    }
    let (na, nb) = (
        a.conn().value("DBSIZE").as_int().unwrap(),
        b.conn().value("DBSIZE").as_int().unwrap(),
    );
    assert!(na > 0 && nb > 0 && na + nb == 50, "{na} {nb}");
    // Not subscribed: the confirmations of nothing.
    assert_eq!(
        text(&sub.send(&["UNSUBSCRIBE"])),
        "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"
    );
    // Pipelined: earlier replies first, then the subscription.
    sub.write_raw(
        &[
            tests::resp::encode_command(&["SET", "p1", "1"]),
            tests::resp::encode_command(&["SUBSCRIBE", "z"]),
        ]
        .concat(),
    )
    .unwrap();
    assert_reply(&sub.read_reply().unwrap(), b"+OK\r\n");
    assert_reply(
        &sub.read_reply().unwrap(),
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\nz\r\n:1\r\n",
    );
    // Pipelined after the last UNSUBSCRIBE: routed by slot again, never
    // run on the pub/sub connection (FLUSHALL stays refused).
    sub.write_raw(
        &[
            tests::resp::encode_command(&["UNSUBSCRIBE", "z"]),
            tests::resp::encode_command(&["FLUSHALL"]),
            tests::resp::encode_command(&["SET", "after-unsub", "1"]),
        ]
        .concat(),
    )
    .unwrap();
    assert_reply(
        &sub.read_reply().unwrap(),
        b"*3\r\n$11\r\nunsubscribe\r\n$1\r\nz\r\n:0\r\n",
    );
    assert!(
        text(&sub.read_reply().unwrap())
            .starts_with("-ERR handle request, command 'FLUSHALL' is not allowed")
    );
    assert_reply(&sub.read_reply().unwrap(), b"+OK\r\n");
    let owner = if protocol::slot::slot_of(b"after-unsub") < 512 {
        &a
    } else {
        &b
    };
    assert_reply(&owner.conn().send(&["EXISTS", "after-unsub"]), b":1\r\n");
    assert_reply(
        &sub.send(&["SUBSCRIBE", "z"]),
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\nz\r\n:1\r\n",
    );
    // A SUBSCRIBE without channels, while subscribed: the server's error.
    assert!(text(&sub.send(&["SUBSCRIBE"])).starts_with("-ERR wrong number of arguments"));
    assert_reply(&sub.send(&["PING"]), b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    // QUIT ends a subscribed client.
    assert_reply(&sub.send(&["QUIT"]), b"+OK\r\n");
    let (_, closed) = sub.read_until_close(Duration::from_millis(500), Duration::from_secs(2));
    assert!(closed);
}

#[test]
fn sharded_resp3_and_reset() {
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let p = Proxy::start(Some(&split_slots(a.port(), b.port(), 512)), &[]);
    // Shard channels of one slot, on its owner.
    let mut sub = p.conn();
    let mut publ = p.conn();
    assert_reply(
        &sub.send(&["SSUBSCRIBE", "{s}1", "{s}2"]),
        b"*3\r\n$10\r\nssubscribe\r\n$4\r\n{s}1\r\n:1\r\n",
    );
    sub.read_reply().unwrap();
    assert_reply(&publ.send(&["SPUBLISH", "{s}2", "m"]), b":1\r\n");
    assert_eq!(
        text(&sub.read_reply().unwrap()),
        "*3\r\n$8\r\nsmessage\r\n$4\r\n{s}2\r\n$1\r\nm\r\n"
    );
    // Several slots in one SSUBSCRIBE: CROSSSLOT.
    assert_reply(
        &sub.send(&["SSUBSCRIBE", "{s}3", "{t}3"]),
        b"-CROSSSLOT Keys in request don't hash to the same slot\r\n",
    );
    // RESET leaves subscribed mode.
    assert_reply(&sub.send(&["RESET"]), b"+RESET\r\n");
    assert_reply(&publ.send(&["SPUBLISH", "{s}2", "m"]), b":0\r\n");
    assert_reply(&sub.send(&["SET", "after", "1"]), b"+OK\r\n");
    // RESP3: confirmations and messages are pushes; other commands are
    // refused while subscribed.
    let mut s3 = p.conn();
    s3.send(&["HELLO", "3"]);
    assert_reply(
        &s3.send(&["SUBSCRIBE", "c3"]),
        b">3\r\n$9\r\nsubscribe\r\n$2\r\nc3\r\n:1\r\n",
    );
    assert_reply(&s3.send(&["PING"]), b"+PONG\r\n");
    let r = s3.send(&["GET", "x"]);
    assert!(
        text(&r).starts_with("-ERR handle request, command 'GET' is not allowed while subscribed"),
        "{}",
        text(&r)
    );
    assert_reply(&publ.send(&["PUBLISH", "c3", "hi"]), b":1\r\n");
    assert_reply(
        &s3.read_reply().unwrap(),
        b">3\r\n$7\r\nmessage\r\n$2\r\nc3\r\n$2\r\nhi\r\n",
    );
    assert_reply(
        &s3.send(&["UNSUBSCRIBE", "c3"]),
        b">3\r\n$11\r\nunsubscribe\r\n$2\r\nc3\r\n:0\r\n",
    );
    assert_reply(&s3.send(&["GET", "after"]), b"$1\r\n1\r\n");
}

#[test]
fn subscriptions_follow_their_slot() {
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let p = Proxy::start(Some(&split_slots(a.port(), b.port(), 512)), &[]);
    let mut sub = p.conn();
    let mut publ = p.conn();
    assert_reply(
        &sub.send(&["SUBSCRIBE", "moving"]),
        b"*3\r\n$9\r\nsubscribe\r\n$6\r\nmoving\r\n:1\r\n",
    );
    assert_reply(
        &a.conn().send(&["PUBSUB", "NUMSUB", "moving"]),
        b"*2\r\n$6\r\nmoving\r\n:1\r\n",
    );
    // Slot 0 (the pub/sub server's) moves to b.
    replace_file(&p.slot_file(), &split_slots(b.port(), b.port(), 512));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = http_get(p.admin, "/proxy/slots");
        if !body.contains(&format!("127.0.0.1:{}", a.port())) {
            break;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = Conn::connect(b.port())
            .unwrap()
            .send(&["PUBSUB", "NUMSUB", "moving"]);
        if r == b"*2\r\n$6\r\nmoving\r\n:1\r\n" {
            break;
        }
        assert!(Instant::now() < deadline, "subscription did not follow");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_reply(&publ.send(&["PUBLISH", "moving", "x"]), b":1\r\n");
    assert_reply(
        &sub.read_reply().unwrap(),
        b"*3\r\n$7\r\nmessage\r\n$6\r\nmoving\r\n$1\r\nx\r\n",
    );
}
