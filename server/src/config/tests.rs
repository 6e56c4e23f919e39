//! Unit tests. Expected texts and values were taken from a real
//! redis-server 7.0.15 (command-line errors, `CONFIG GET`/`CONFIG SET`).

use super::parse::{memtoull, string2ll, strtoll};
use super::*;

fn sv(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn toks(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    split_args(line)
}

fn words(v: &[&str]) -> Option<Vec<Vec<u8>>> {
    Some(v.iter().map(|s| s.as_bytes().to_vec()).collect())
}

fn get1(c: &Config, name: &str) -> String {
    String::from_utf8_lossy(&c.get_one(name).expect("known parameter")).into_owned()
}

fn set(c: &mut Config, pairs: &[(&str, &str)]) -> Result<Vec<&'static str>, String> {
    let p: Vec<(&[u8], &[u8])> = pairs
        .iter()
        .map(|(a, b)| (a.as_bytes(), b.as_bytes()))
        .collect();
    c.set(&p)
}

fn fatal(line: usize, text: &str, err: &str) -> String {
    format!(
        "\n*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***\nReading the configuration file, at line {line}\n>>> '{text}'\n{err}"
    )
}

fn load_err(args: &[&str]) -> String {
    match load(&sv(args)) {
        Ok(_) => panic!("expected an error for {args:?}"),
        Err(e) => e,
    }
}

/// A scratch directory unique to one test.
fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("codis-cfg-test-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create scratch dir");
    d
}

// ---------------------------------------------------------------- tokenizer

#[test]
fn split_plain_words_and_blanks() {
    assert_eq!(toks(b"set a b"), words(&["set", "a", "b"]));
    assert_eq!(toks(b"  set \t a\r\nb  "), words(&["set", "a", "b"]));
    assert_eq!(toks(b""), words(&[]));
    assert_eq!(toks(b"   \t "), words(&[]));
    // \v and \f are skipped between words but do not end an unquoted word.
    assert_eq!(toks(b"\x0ba\x0bb"), words(&["a\x0bb"]));
}

#[test]
fn split_double_quotes() {
    assert_eq!(
        toks(br#"requirepass "a\x41b""#),
        words(&["requirepass", "aAb"])
    );
    assert_eq!(
        toks(br#""\n\r\t\b\a\\\"\q""#),
        words(&["\n\r\t\x08\x07\\\"q"])
    );
    // \x needs two hex digits, otherwise it is just `x`.
    assert_eq!(toks(br#""\x4" "\xZZ""#), words(&["x4", "xZZ"]));
    assert_eq!(toks(br#""\xfF""#), Some(vec![vec![0xff]]));
    assert_eq!(toks(br#""a b"  "c""#), words(&["a b", "c"]));
    assert_eq!(toks(br#"a"b c"d"#), None);
    assert_eq!(toks(br#"a"b c""#), words(&["ab c"]));
    assert_eq!(toks(br#""""#), words(&[""]));
    assert_eq!(toks(br#"save """#), words(&["save", ""]));
    // The closing quote must be followed by a blank (any isspace) or the end.
    assert_eq!(toks(br#""a"b"#), None);
    assert_eq!(toks(b"\"a\"\x0bb"), words(&["a", "b"]));
    assert_eq!(toks(br#""abc"#), None);
    assert_eq!(toks(br#""abc\"#), None);
    assert_eq!(toks(br#""abc\""#), None);
}

#[test]
fn split_single_quotes() {
    assert_eq!(toks(br"'it\'s'"), words(&["it's"]));
    assert_eq!(toks(br"'a\nb\\x'"), words(&["a\\nb\\\\x"]));
    // `\'` always escapes the quote, so this one never closes.
    assert_eq!(toks(br"'a\\'"), None);
    assert_eq!(toks(br#"'"x"'"#), words(&["\"x\""]));
    assert_eq!(toks(b"''"), words(&[""]));
    assert_eq!(toks(b"'a'b"), None);
    assert_eq!(toks(b"'abc"), None);
}

#[test]
fn split_stops_at_nul() {
    assert_eq!(toks(b"a b\0c d"), words(&["a", "b"]));
    assert_eq!(toks(b"\"a\0\""), None);
}

#[test]
fn repr_round_trips() {
    assert_eq!(repr(b"abc"), "\"abc\"");
    assert_eq!(
        repr(b"a\"b\\c\n\r\t\x07\x08\x01\xff "),
        r#""a\"b\\c\n\r\t\a\b\x01\xff ""#
    );
    for s in [&b""[..], b"x y", b"\x00\x7f\x80", b"'\"", b"--port"] {
        let line = repr(s);
        assert_eq!(
            split_args(line.as_bytes()),
            Some(vec![s.to_vec()]),
            "{line}"
        );
    }
}

// ---------------------------------------------------------------- numbers

#[test]
fn number_parsers() {
    assert_eq!(string2ll(b"0"), Some(0));
    assert_eq!(string2ll(b"-9223372036854775808"), Some(i64::MIN));
    assert_eq!(string2ll(b"9223372036854775807"), Some(i64::MAX));
    for bad in [
        &b""[..],
        b"01",
        b"+5",
        b" 5",
        b"5 ",
        b"-0",
        b"-",
        b"9223372036854775808",
        b"1e3",
    ] {
        assert_eq!(string2ll(bad), None, "{:?}", String::from_utf8_lossy(bad));
    }
    assert_eq!(strtoll(b"  +12x", 10), (12, 5, false));
    assert_eq!(strtoll(b"", 10), (0, 0, false));
    assert_eq!(strtoll(b"-", 10), (0, 0, false));
    assert_eq!(strtoll(b"99999999999999999999", 10), (i64::MAX, 20, true));
    assert_eq!(strtoll(b"777", 8), (511, 3, false));
    assert_eq!(strtoll(b"78", 8), (7, 1, false));
}

#[test]
fn memory_units() {
    assert_eq!(memtoull(b"1"), Some(1));
    assert_eq!(memtoull(b"1b"), Some(1));
    assert_eq!(memtoull(b"1B"), Some(1));
    assert_eq!(memtoull(b"1k"), Some(1000));
    assert_eq!(memtoull(b"1K"), Some(1000));
    assert_eq!(memtoull(b"1kb"), Some(1024));
    assert_eq!(memtoull(b"1KB"), Some(1024));
    assert_eq!(memtoull(b"1kB"), Some(1024));
    assert_eq!(memtoull(b"2m"), Some(2_000_000));
    assert_eq!(memtoull(b"2mb"), Some(2 << 20));
    assert_eq!(memtoull(b"3g"), Some(3_000_000_000));
    assert_eq!(memtoull(b"3Gb"), Some(3 << 30));
    // redis 7.0.15 quirks: empty number is 0, saturation, wrapping multiply.
    assert_eq!(memtoull(b""), Some(0));
    assert_eq!(memtoull(b"k"), Some(0));
    assert_eq!(memtoull(b"99999999999999999999999"), Some(u64::MAX));
    assert_eq!(
        memtoull(b"99999999999999999999k"),
        Some(18446744073709550616)
    );
    for bad in [&b"-1"[..], b"1.5mb", b"1tb", b"1 mb", b" 1", b"1kbb", b"x"] {
        assert_eq!(memtoull(bad), None, "{:?}", String::from_utf8_lossy(bad));
    }
}

// ---------------------------------------------------------------- defaults

/// `CONFIG GET *` of a fresh redis-server 7.0.15 (TLS parameters and `dir`
/// left out, `port` at its default).
const REDIS_DEFAULTS: &[(&str, &str)] = &[
    ("acl-pubsub-default", "resetchannels"),
    ("aclfile", ""),
    ("acllog-max-len", "128"),
    ("active-defrag-cycle-max", "25"),
    ("active-defrag-cycle-min", "1"),
    ("active-defrag-ignore-bytes", "104857600"),
    ("active-defrag-max-scan-fields", "1000"),
    ("active-defrag-threshold-lower", "10"),
    ("active-defrag-threshold-upper", "100"),
    ("active-expire-effort", "1"),
    ("activedefrag", "no"),
    ("activerehashing", "yes"),
    ("always-show-logo", "no"),
    ("aof-disable-auto-gc", "no"),
    ("aof-load-truncated", "yes"),
    ("aof-rewrite-incremental-fsync", "yes"),
    ("aof-timestamp-enabled", "no"),
    ("aof-use-rdb-preamble", "yes"),
    ("aof_rewrite_cpulist", ""),
    ("appenddirname", "appendonlydir"),
    ("appendfilename", "appendonly.aof"),
    ("appendfsync", "everysec"),
    ("appendonly", "no"),
    ("auto-aof-rewrite-min-size", "67108864"),
    ("auto-aof-rewrite-percentage", "100"),
    ("bgsave_cpulist", ""),
    ("bind", "* -::*"),
    ("bind-source-addr", ""),
    ("bio_cpulist", ""),
    ("busy-reply-threshold", "5000"),
    (
        "client-output-buffer-limit",
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
    ),
    ("client-query-buffer-limit", "1073741824"),
    ("cluster-allow-pubsubshard-when-down", "yes"),
    ("cluster-allow-reads-when-down", "no"),
    ("cluster-allow-replica-migration", "yes"),
    ("cluster-announce-bus-port", "0"),
    ("cluster-announce-hostname", ""),
    ("cluster-announce-ip", ""),
    ("cluster-announce-port", "0"),
    ("cluster-announce-tls-port", "0"),
    ("cluster-config-file", "nodes.conf"),
    ("cluster-enabled", "no"),
    ("cluster-link-sendbuf-limit", "0"),
    ("cluster-migration-barrier", "1"),
    ("cluster-node-timeout", "15000"),
    ("cluster-port", "0"),
    ("cluster-preferred-endpoint-type", "ip"),
    ("cluster-replica-no-failover", "no"),
    ("cluster-replica-validity-factor", "10"),
    ("cluster-require-full-coverage", "yes"),
    ("cluster-slave-no-failover", "no"),
    ("cluster-slave-validity-factor", "10"),
    ("crash-log-enabled", "yes"),
    ("crash-memcheck-enabled", "yes"),
    ("daemonize", "no"),
    ("databases", "16"),
    ("dbfilename", "dump.rdb"),
    ("disable-thp", "yes"),
    ("dynamic-hz", "yes"),
    ("enable-debug-command", "no"),
    ("enable-module-command", "no"),
    ("enable-protected-configs", "no"),
    ("hash-max-listpack-entries", "512"),
    ("hash-max-listpack-value", "64"),
    ("hash-max-ziplist-entries", "512"),
    ("hash-max-ziplist-value", "64"),
    ("hll-sparse-max-bytes", "3000"),
    ("hz", "10"),
    ("ignore-warnings", ""),
    ("io-threads", "1"),
    ("io-threads-do-reads", "no"),
    ("jemalloc-bg-thread", "yes"),
    ("latency-monitor-threshold", "0"),
    ("latency-tracking", "yes"),
    ("latency-tracking-info-percentiles", "50 99 99.9"),
    ("lazyfree-lazy-eviction", "no"),
    ("lazyfree-lazy-expire", "no"),
    ("lazyfree-lazy-server-del", "no"),
    ("lazyfree-lazy-user-del", "no"),
    ("lazyfree-lazy-user-flush", "no"),
    ("lfu-decay-time", "1"),
    ("lfu-log-factor", "10"),
    ("list-compress-depth", "0"),
    ("list-max-listpack-size", "-2"),
    ("list-max-ziplist-size", "-2"),
    ("logfile", ""),
    ("loglevel", "notice"),
    ("lua-time-limit", "5000"),
    ("masterauth", ""),
    ("masteruser", ""),
    ("maxclients", "10000"),
    ("maxmemory", "0"),
    ("maxmemory-clients", "0"),
    ("maxmemory-eviction-tenacity", "10"),
    ("maxmemory-policy", "noeviction"),
    ("maxmemory-samples", "5"),
    ("min-replicas-max-lag", "10"),
    ("min-replicas-to-write", "0"),
    ("min-slaves-max-lag", "10"),
    ("min-slaves-to-write", "0"),
    ("no-appendfsync-on-rewrite", "no"),
    ("notify-keyspace-events", ""),
    ("oom-score-adj", "no"),
    ("oom-score-adj-values", "0 200 800"),
    ("pidfile", ""),
    ("port", "6379"),
    ("proc-title-template", "{title} {listen-addr} {server-mode}"),
    ("propagation-error-behavior", "ignore"),
    ("protected-mode", "yes"),
    ("proto-max-bulk-len", "536870912"),
    ("rdb-del-sync-files", "no"),
    ("rdb-save-incremental-fsync", "yes"),
    ("rdbchecksum", "yes"),
    ("rdbcompression", "yes"),
    ("repl-backlog-size", "1048576"),
    ("repl-backlog-ttl", "3600"),
    ("repl-disable-tcp-nodelay", "no"),
    ("repl-diskless-load", "disabled"),
    ("repl-diskless-sync", "yes"),
    ("repl-diskless-sync-delay", "5"),
    ("repl-diskless-sync-max-replicas", "0"),
    ("repl-ping-replica-period", "10"),
    ("repl-ping-slave-period", "10"),
    ("repl-timeout", "60"),
    ("replica-announce-ip", ""),
    ("replica-announce-port", "0"),
    ("replica-announced", "yes"),
    ("replica-ignore-disk-write-errors", "no"),
    ("replica-ignore-maxmemory", "yes"),
    ("replica-lazy-flush", "no"),
    ("replica-priority", "100"),
    ("replica-read-only", "yes"),
    ("replica-serve-stale-data", "yes"),
    ("replicaof", ""),
    ("requirepass", ""),
    ("sanitize-dump-payload", "no"),
    ("save", "3600 1 300 100 60 10000"),
    ("server_cpulist", ""),
    ("set-max-intset-entries", "512"),
    ("set-proc-title", "yes"),
    ("shutdown-on-sigint", "default"),
    ("shutdown-on-sigterm", "default"),
    ("shutdown-timeout", "10"),
    ("slave-announce-ip", ""),
    ("slave-announce-port", "0"),
    ("slave-ignore-maxmemory", "yes"),
    ("slave-lazy-flush", "no"),
    ("slave-priority", "100"),
    ("slave-read-only", "yes"),
    ("slave-serve-stale-data", "yes"),
    ("slaveof", ""),
    ("slowlog-log-slower-than", "10000"),
    ("slowlog-max-len", "128"),
    ("socket-mark-id", "0"),
    ("stop-writes-on-bgsave-error", "yes"),
    ("stream-node-max-bytes", "4096"),
    ("stream-node-max-entries", "100"),
    ("supervised", "no"),
    ("syslog-enabled", "no"),
    ("syslog-facility", "local0"),
    ("syslog-ident", "redis"),
    ("tcp-backlog", "511"),
    ("tcp-keepalive", "300"),
    ("timeout", "0"),
    ("tracking-table-max-keys", "1000000"),
    ("unixsocket", ""),
    ("unixsocketperm", "0"),
    ("zset-max-listpack-entries", "128"),
    ("zset-max-listpack-value", "64"),
    ("zset-max-ziplist-entries", "128"),
    ("zset-max-ziplist-value", "64"),
];

#[test]
fn defaults_match_redis() {
    let c = Config::new();
    let all = c.get(&[b"*"]);
    // codis-server's own parameters, with their defaults.
    let own = [
        ("client-output-backpressure", "262144"),
        ("migration-user", ""),
        ("migration-password", ""),
    ];
    for (k, v) in own {
        assert!(all.iter().any(|(n, x)| n == k && x == v.as_bytes()), "{k}");
    }
    let mut ours: Vec<(&str, String)> = all
        .iter()
        .filter(|(k, _)| k != "dir" && !own.iter().any(|(n, _)| n == k))
        .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    ours.sort();
    let theirs: Vec<(&str, String)> = REDIS_DEFAULTS
        .iter()
        .map(|(k, v)| (*k, v.to_string()))
        .collect();
    assert_eq!(ours, theirs);
    assert!(all.iter().any(|(k, _)| k == "dir"));
}

#[test]
fn typed_defaults() {
    let c = Config::default();
    assert_eq!(c.port, 6379);
    assert_eq!(c.bind, sv(&["*", "-::*"]));
    assert_eq!(c.requirepass, None);
    assert_eq!(c.databases, 16);
    assert_eq!(c.maxclients, 10000);
    assert_eq!(c.timeout_secs, 0);
    assert_eq!(c.tcp_keepalive, 300);
    assert_eq!(c.tcp_backlog, 511);
    assert_eq!(c.hz, 10);
    assert_eq!(c.io_threads, 1);
    assert_eq!(c.proto_max_bulk_len, 512 << 20);
    assert_eq!(c.client_query_buffer_limit, 1 << 30);
    assert_eq!(c.maxmemory, 0);
    assert_eq!(c.maxmemory_policy, MaxmemoryPolicy::NoEviction);
    assert_eq!(c.loglevel, crate::log::Level::Notice);
    assert_eq!(c.log_level(), crate::log::Level::Notice);
    assert!(c.logfile.is_empty() && c.pidfile.is_empty() && c.unixsocket.is_empty());
    assert!(c.protected_mode && !c.daemonize && !c.appendonly);
    assert_eq!(
        c.save_params,
        vec![
            SaveParam {
                seconds: 3600,
                changes: 1
            },
            SaveParam {
                seconds: 300,
                changes: 100
            },
            SaveParam {
                seconds: 60,
                changes: 10000
            }
        ]
    );
    assert_eq!(
        c.client_output_buffer_limit[CLIENT_CLASS_NORMAL],
        ClientBufferLimit::default()
    );
    assert_eq!(
        c.client_output_buffer_limit[CLIENT_CLASS_PUBSUB],
        ClientBufferLimit {
            hard_bytes: 32 << 20,
            soft_bytes: 8 << 20,
            soft_seconds: 60
        }
    );
    assert_eq!(c.latency_tracking_info_percentiles, vec![50.0, 99.0, 99.9]);
    assert_eq!(c.list_max_listpack_size, -2);
    assert_eq!(c.slowlog_log_slower_than, 10000);
    assert_eq!(c.busy_reply_threshold_ms, 5000);
    assert_eq!(c.replicaof, None);
    assert_eq!(c.enable_debug_command, EnableLevel::No);
    let cwd = std::env::current_dir().expect("cwd");
    assert_eq!(
        Path::new(&c.dir),
        std::fs::canonicalize(cwd).expect("canon").as_path()
    );
}

// ---------------------------------------------------------------- command line

#[test]
fn argv_scan_like_redis_main() {
    let a = scan_argv(&sv(&["--port", "6380", "--save", "", "--appendonly", "no"]));
    assert_eq!(
        a.options,
        b"port \"6380\" \nsave \"\" \nappendonly \"no\" ".to_vec()
    );
    // `--save` followed by an option, or last, means `save ""`.
    let a = scan_argv(&sv(&["--save", "--port", "1"]));
    assert_eq!(a.options, b"save \"\"\nport \"1\" ".to_vec());
    let a = scan_argv(&sv(&["--port", "1", "--save"]));
    assert_eq!(a.options, b"port \"1\" \nsave \"\"".to_vec());
    // Right after a bare `--name`, a `--word` is a value.
    let a = scan_argv(&sv(&["--requirepass", "--secret", "--port", "1"]));
    assert_eq!(
        a.options,
        b"requirepass \"--secret\" \nport \"1\" ".to_vec()
    );
    // `--name value` in one argument.
    let a = scan_argv(&sv(&["--port 6380", "--bind", "1.2.3.4", "::1"]));
    assert_eq!(a.options, b"port 6380 \nbind \"1.2.3.4\" \"::1\" ".to_vec());
    // Config file and stdin.
    let a = scan_argv(&sv(&["redis.conf", "--port", "1"]));
    assert_eq!(a.config_file.as_deref(), Some("redis.conf"));
    assert!(!a.from_stdin);
    let a = scan_argv(&sv(&["-", "--port", "1"]));
    assert!(a.from_stdin && a.config_file.is_none());
    let a = scan_argv(&sv(&["--port", "1", "-"]));
    assert!(a.from_stdin);
    assert_eq!(a.options, b"port \"1\" ".to_vec());
    let a = scan_argv(&sv(&["--x", "a b\"\n\u{e9}"]));
    assert_eq!(a.options, b"x \"a b\\\"\\n\\xc3\\xa9\" ".to_vec());
}

#[test]
fn load_command_line() {
    let c = load(&sv(&[
        "--port",
        "6380",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--protected-mode",
        "no",
        "--dir",
        "/tmp",
        "--maxmemory",
        "1gb",
        "--requirepass",
        "p w",
        "--io-threads",
        "4",
        "--loglevel",
        "WARNING",
        "--bind",
        "127.0.0.1",
        "::1",
    ]))
    .expect("loads");
    assert_eq!(c.port, 6380);
    assert!(c.save_params.is_empty());
    assert!(!c.protected_mode);
    assert_eq!(
        Path::new(&c.dir),
        std::fs::canonicalize("/tmp").expect("tmp").as_path()
    );
    assert_eq!(c.maxmemory, 1 << 30);
    assert_eq!(c.requirepass.as_deref(), Some(&b"p w"[..]));
    assert_eq!(c.io_threads, 4);
    assert_eq!(c.loglevel, crate::log::Level::Warning);
    assert_eq!(c.bind, sv(&["127.0.0.1", "::1"]));
    assert!(c.config_file.is_none());

    // Later wins; option names are case-insensitive.
    let c = load(&sv(&["--port", "1", "--PORT", "2"])).expect("loads");
    assert_eq!(c.port, 2);
    // A multi-word parameter given as one argument is re-split.
    let c = load(&sv(&["--save", "10 1 20 2"])).expect("loads");
    assert_eq!(get1(&c, "save"), "10 1 20 2");
    let c = load(&sv(&["--save", "--port", "7"])).expect("loads");
    assert_eq!(get1(&c, "save"), "");
    assert_eq!(c.port, 7);
    let c = load(&sv(&["--bind", "1.1.1.1 2.2.2.2"])).expect("loads");
    assert_eq!(c.bind, sv(&["1.1.1.1", "2.2.2.2"]));
    let c = load(&sv(&[])).expect("defaults");
    assert_eq!(c.port, 6379);
}

#[test]
fn load_errors_are_redis_text() {
    assert_eq!(
        load_err(&["--port", "abc"]),
        fatal(
            2,
            "port \"abc\"",
            "argument couldn't be parsed into an integer"
        )
    );
    assert_eq!(
        load_err(&["--nosuchoption", "1"]),
        fatal(
            2,
            "nosuchoption \"1\"",
            "Bad directive or wrong number of arguments"
        )
    );
    assert_eq!(
        load_err(&["--databases", "0"]),
        fatal(
            2,
            "databases \"0\"",
            "argument must be between 1 and 2147483647 inclusive"
        )
    );
    assert_eq!(
        load_err(&["--port"]),
        fatal(2, "port", "wrong number of arguments")
    );
    assert_eq!(
        load_err(&["--port", "6380", "6381"]),
        fatal(2, "port \"6380\" \"6381\"", "wrong number of arguments")
    );
    assert_eq!(
        load_err(&["--daemonize", "maybe"]),
        fatal(2, "daemonize \"maybe\"", "argument must be 'yes' or 'no'")
    );
    assert_eq!(
        load_err(&["--maxmemory", "1x"]),
        fatal(2, "maxmemory \"1x\"", "argument must be a memory value")
    );
    assert_eq!(
        load_err(&["--loglevel", "foo"]),
        fatal(
            2,
            "loglevel \"foo\"",
            "argument(s) must be one of the following: debug, verbose, notice, warning"
        )
    );
    assert_eq!(
        load_err(&["--dir", "/nonexistent-codis"]),
        fatal(2, "dir \"/nonexistent-codis\"", "No such file or directory")
    );
    assert_eq!(
        load_err(&["--dir", "/etc/passwd"]),
        fatal(2, "dir \"/etc/passwd\"", "Not a directory")
    );
    assert_eq!(
        load_err(&["--dir", ""]),
        fatal(2, "dir \"\"", "No such file or directory")
    );
    assert_eq!(
        load_err(&["--save", "--port", "abc"]),
        fatal(
            3,
            "port \"abc\"",
            "argument couldn't be parsed into an integer"
        )
    );
    assert_eq!(
        load_err(&["--port", "--6380"]),
        fatal(
            2,
            "port \"--6380\"",
            "argument couldn't be parsed into an integer"
        )
    );
    assert_eq!(
        load_err(&["--port", ""]),
        fatal(
            2,
            "port \"\"",
            "argument couldn't be parsed into an integer"
        )
    );
    assert_eq!(
        load_err(&["--port 6380", "--nosuch"]),
        fatal(3, "nosuch", "Bad directive or wrong number of arguments")
    );
    assert_eq!(
        load_err(&["--", "--nosuch"]),
        fatal(
            2,
            "\"--nosuch\"",
            "Bad directive or wrong number of arguments"
        )
    );
    assert_eq!(
        load_err(&["--PORT", "abc"]),
        fatal(
            2,
            "PORT \"abc\"",
            "argument couldn't be parsed into an integer"
        )
    );
    assert_eq!(
        load_err(&["--port abc"]),
        fatal(2, "port abc", "argument couldn't be parsed into an integer")
    );
    assert_eq!(
        load_err(&["--port", "\"abc"]),
        fatal(
            2,
            "port \"\\\"abc\"",
            "argument couldn't be parsed into an integer"
        )
    );
    assert_eq!(
        load_err(&["--port \"abc"]),
        fatal(2, "port \"abc", "Unbalanced quotes in configuration line")
    );
    assert_eq!(
        load_err(&["--save", "1"]),
        fatal(2, "save \"1\"", "Invalid save parameters")
    );
    assert_eq!(
        load_err(&["--save", "1", "-1"]),
        fatal(2, "save \"1\" \"-1\"", "Invalid save parameters")
    );
    assert_eq!(
        load_err(&["--io-threads", "129"]),
        fatal(
            2,
            "io-threads \"129\"",
            "argument must be between 1 and 128 inclusive"
        )
    );
    assert_eq!(
        load_err(&["--proto-max-bulk-len", "1k"]),
        fatal(
            2,
            "proto-max-bulk-len \"1k\"",
            "argument must be between 1048576 and 9223372036854775807 inclusive"
        )
    );
    assert_eq!(
        load_err(&["--unixsocketperm", "8"]),
        fatal(
            2,
            "unixsocketperm \"8\"",
            "argument couldn't be parsed as an octal number"
        )
    );
    assert_eq!(
        load_err(&["--unixsocketperm", "77777777777"]),
        fatal(
            2,
            "unixsocketperm \"77777777777\"",
            "argument must be between 0 and 777 inclusive"
        )
    );
    assert_eq!(
        load_err(&["--dbfilename", "a/b"]),
        fatal(
            2,
            "dbfilename \"a/b\"",
            "dbfilename can't be a path, just a filename"
        )
    );
    assert_eq!(
        load_err(&["--appendfilename", ""]),
        fatal(2, "appendfilename \"\"", "appendfilename can't be empty")
    );
    assert_eq!(
        load_err(&["--appenddirname", "a/b"]),
        fatal(
            2,
            "appenddirname \"a/b\"",
            "appenddirname can't be a path, just a dirname"
        )
    );
    assert_eq!(
        load_err(&["--replicaof", "localhost", "x"]),
        fatal(2, "replicaof \"localhost\" \"x\"", "Invalid master port")
    );
    assert_eq!(
        load_err(&["--slaveof", "x"]),
        fatal(2, "slaveof \"x\"", "wrong number of arguments")
    );
    let many: Vec<String> = std::iter::once("--bind".to_string())
        .chain((1..=17).map(|i| i.to_string()))
        .collect();
    let e = load(&many).expect_err("too many");
    assert!(e.ends_with("\nToo many bind addresses specified."), "{e}");
    assert_eq!(
        load_err(&["--shutdown-on-sigint", "save nosave"]),
        fatal(
            2,
            "shutdown-on-sigint \"save nosave\"",
            "shutdown options SAVE and NOSAVE can't be used simultaneously"
        )
    );
    assert_eq!(
        load_err(&["--oom-score-adj-values", "1", "2", "3000"]),
        fatal(
            2,
            "oom-score-adj-values \"1\" \"2\" \"3000\"",
            "Invalid oom-score-adj-values, elements must be between -2000 and 2000."
        )
    );
    assert_eq!(
        load_err(&["--client-output-buffer-limit", "foo 0 0 0"]),
        fatal(
            2,
            "client-output-buffer-limit \"foo 0 0 0\"",
            "Invalid client class specified in buffer limit configuration."
        )
    );
    assert_eq!(
        load_err(&["--proc-title-template", "{x}"]),
        fatal(
            2,
            "proc-title-template \"{x}\"",
            "template format is invalid or contains unknown variables"
        )
    );
    assert_eq!(
        load_err(&["--maxmemory-clients", "101%"]),
        fatal(
            2,
            "maxmemory-clients \"101%\"",
            "percentage argument must be less or equal to 100"
        )
    );
    assert_eq!(
        load_err(&["--notify-keyspace-events", "xyz"]),
        fatal(
            2,
            "notify-keyspace-events \"xyz\"",
            "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."
        )
    );
    assert_eq!(
        load_err(&["--latency-tracking-info-percentiles", "50 101"]),
        fatal(
            2,
            "latency-tracking-info-percentiles \"50 101\"",
            "latency-tracking-info-percentiles parameters should sit between [0.0,100.0]"
        )
    );
    assert_eq!(
        load_err(&["--logfile", "/nonexistent-codis/x.log"]),
        "\n*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***\nCan't open the log file: No such file or directory"
    );
    let e = load_err(&["/nonexistent-codis/redis.conf"]);
    assert_eq!(
        e,
        "Fatal error, can't open config file '/nonexistent-codis/redis.conf': No such file or directory"
    );
}

#[test]
fn load_accepts_what_redis_accepts() {
    let ok = |args: &[&str]| load(&sv(args)).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let c = ok(&[
        "--daemonize",
        "YES",
        "--loglevel",
        "DEBUG",
        "--hz",
        "0",
        "--timeout",
        "5",
    ]);
    assert!(c.daemonize);
    assert_eq!(c.loglevel, crate::log::Level::Debug);
    assert_eq!(c.hz, 1);
    assert_eq!(c.timeout_secs, 5);
    assert_eq!(ok(&["--hz", "1000"]).hz, 500);
    let c = ok(&["--save", " 1", " 2"]);
    assert_eq!(
        c.save_params,
        vec![SaveParam {
            seconds: 1,
            changes: 2
        }]
    );
    let c = ok(&["--save", "+1", "-0"]);
    assert_eq!(get1(&c, "save"), "1 0");
    let c = ok(&["--replicaof", "no", "one"]);
    assert_eq!(c.replicaof, None);
    let c = ok(&["--slaveof", "10.0.0.1", "6379"]);
    assert_eq!(c.replicaof, Some(("10.0.0.1".into(), 6379)));
    assert_eq!(get1(&c, "replicaof"), "10.0.0.1 6379");
    let c = ok(&["--unixsocketperm", "777", "--unixsocket", "/tmp/x.sock"]);
    assert_eq!(c.unixsocketperm, 0o777);
    assert_eq!(get1(&c, "unixsocketperm"), "777");
    assert_eq!(c.unixsocket, "/tmp/x.sock");
    let c = ok(&["--bind", ""]);
    assert!(c.bind.is_empty());
    assert_eq!(get1(&c, "bind"), "");
    let c = ok(&["--shutdown-on-sigint", "save", "now"]);
    assert_eq!(
        c.shutdown_on_sigint,
        shutdown_flags::SAVE | shutdown_flags::NOW
    );
    assert_eq!(get1(&c, "shutdown-on-sigint"), "save now");
    let c = ok(&["--oom-score-adj-values", "1 2 3"]);
    assert_eq!(get1(&c, "oom-score-adj-values"), "1 2 3");
    let c = ok(&["--client-output-buffer-limit", "normal 0 0 0"]);
    assert_eq!(
        get1(&c, "client-output-buffer-limit"),
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
    );
    let c = ok(&["--rename-command", "flushall", ""]);
    assert_eq!(c.rename_commands, vec![(b"flushall".to_vec(), Vec::new())]);
    let c = ok(&[
        "--list-max-ziplist-entries",
        "5",
        "--lua-replicate-commands",
        "yes",
    ]);
    assert_eq!(c.port, 6379);
    let c = ok(&["--lua-time-limit", "5"]);
    assert_eq!(c.busy_reply_threshold_ms, 5);
    let c = ok(&["--maxmemory-clients", "10%"]);
    assert_eq!(get1(&c, "maxmemory-clients"), "10%");
    let c = ok(&["--latency-tracking-info-percentiles", ""]);
    assert!(c.latency_tracking_info_percentiles.is_empty());
    let c = ok(&["--requirepass", ""]);
    assert_eq!(c.requirepass, None);
    let c = ok(&["--user", "default", "on", "nopass", "~*", "+@all"]);
    assert_eq!(c.users.len(), 1);
    assert_eq!(c.users[0].len(), 5);
}

#[test]
fn config_file_lines() {
    let d = scratch("file");
    let conf = d.join("a.conf");
    std::fs::write(
        &conf,
        format!(
            "# a comment\n\n   port 7001   \r\n\tsave 10 1  \nsave 20 2\nrequirepass \"a\\x41b\"\ndir {}\nINCLUDE inc.conf\n",
            d.display()
        ),
    )
    .expect("write");
    std::fs::write(d.join("inc.conf"), b"maxmemory 2mb\n").expect("write");
    let path = conf.to_string_lossy().into_owned();
    let c = load(&sv(&[&path, "--maxmemory-policy", "allkeys-lru"])).expect("loads");
    assert_eq!(c.port, 7001);
    assert_eq!(get1(&c, "save"), "10 1 20 2");
    assert_eq!(c.requirepass.as_deref(), Some(&b"aAb"[..]));
    assert_eq!(c.maxmemory, 2 << 20);
    assert_eq!(c.maxmemory_policy, MaxmemoryPolicy::AllkeysLru);
    assert_eq!(c.config_file.as_deref(), Some(path.as_str()));

    // `save ""` clears, later lines append again.
    let c = Config::from_text(b"save 1 1\nsave \"\"\nsave 5 5\n").expect("loads");
    assert_eq!(get1(&c, "save"), "5 5");
    let c = Config::from_text(b"save 1 1\nsave \"\"\n").expect("loads");
    assert_eq!(get1(&c, "save"), "");

    // Error line numbers count every line of the file, then a blank line
    // before the command-line options.
    std::fs::write(&conf, b"port 6391\n\n# comment\n  save 10 1  \nfoo bar\n").expect("write");
    assert_eq!(
        load_err(&[&path]),
        fatal(5, "foo bar", "Bad directive or wrong number of arguments")
    );
    std::fs::write(&conf, b"port 6391\n\n# comment\n  save 10 1  \n").expect("write");
    assert_eq!(
        load_err(&[&path, "--port", "x"]),
        fatal(
            6,
            "port \"x\"",
            "argument couldn't be parsed into an integer"
        )
    );
    std::fs::write(&conf, b"port 6391").expect("write");
    assert_eq!(
        load_err(&[&path, "--port", "x"]),
        fatal(
            2,
            "port \"x\"",
            "argument couldn't be parsed into an integer"
        )
    );
    std::fs::write(&conf, b"port 6391\r\n").expect("write");
    assert_eq!(
        load_err(&[&path, "--port", "x"]),
        fatal(
            3,
            "port \"x\"",
            "argument couldn't be parsed into an integer"
        )
    );
    std::fs::write(&conf, b"  port  \"a\\x41b\"  \n").expect("write");
    assert_eq!(
        load_err(&[&path]),
        fatal(
            1,
            "port  \"a\\x41b\"",
            "argument couldn't be parsed into an integer"
        )
    );
    std::fs::write(&conf, b"\tport\t1\t2 \n").expect("write");
    assert_eq!(
        load_err(&[&path]),
        fatal(1, "port\t1\t2", "wrong number of arguments")
    );
    std::fs::write(&conf, b"port \"6391\n").expect("write");
    assert_eq!(
        load_err(&[&path]),
        fatal(1, "port \"6391", "Unbalanced quotes in configuration line")
    );
    std::fs::write(&conf, b"port 1 # comment\n").expect("write");
    assert_eq!(
        load_err(&[&path]),
        fatal(1, "port 1 # comment", "wrong number of arguments")
    );
    std::fs::write(&conf, b"include /nonexistent-codis.conf\n").expect("write");
    assert_eq!(
        load_err(&[&path]),
        "Fatal error, can't open config file '/nonexistent-codis.conf': No such file or directory"
    );
    // An error inside an included file reports that file's line.
    std::fs::write(
        &conf,
        format!("port 1\ndir {}\ninclude inc.conf\n", d.display()),
    )
    .expect("write");
    std::fs::write(d.join("inc.conf"), b"\nhz x\n").expect("write");
    assert_eq!(
        load_err(&[&path]),
        fatal(2, "hz x", "argument couldn't be parsed into an integer")
    );
    std::fs::write(&conf, b"rename-command nosuchcmd x\n").expect("write");
    assert_eq!(
        load_err(&[&path]),
        fatal(
            1,
            "rename-command nosuchcmd x",
            "No such command in rename-command"
        )
    );
    std::fs::write(&conf, b"rename-command get set\n").expect("write");
    assert_eq!(
        load_err(&[&path]),
        fatal(
            1,
            "rename-command get set",
            "Target command name already exists"
        )
    );
    std::fs::write(&conf, b"include\n").expect("write");
    assert_eq!(
        load_err(&[&path]),
        fatal(1, "include", "Bad directive or wrong number of arguments")
    );
    std::fs::write(&conf, b"sentinel monitor x\n").expect("write");
    assert_eq!(
        load_err(&[&path]),
        fatal(
            1,
            "sentinel monitor x",
            "sentinel directive while not in sentinel mode"
        )
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn dir_is_relative_to_previous_dir() {
    let d = scratch("dir");
    std::fs::create_dir_all(d.join("sub")).expect("mkdir");
    let ds = d.to_string_lossy().into_owned();
    let c = load(&sv(&["--dir", &ds, "--dir", "sub"])).expect("loads");
    assert_eq!(
        Path::new(&c.dir),
        std::fs::canonicalize(d.join("sub"))
            .expect("canon")
            .as_path()
    );
    // logfile is checked (and created) relative to the final dir.
    let c = load(&sv(&["--dir", &ds, "--logfile", "x.log"])).expect("loads");
    assert_eq!(c.logfile, "x.log");
    assert!(d.join("x.log").exists());
    let _ = std::fs::remove_dir_all(&d);
}

// ---------------------------------------------------------------- CONFIG GET

fn names(v: &[(String, Vec<u8>)]) -> Vec<&str> {
    v.iter().map(|(k, _)| k.as_str()).collect()
}

#[test]
fn config_get_exact_and_globs() {
    let c = Config::new();
    let r = c.get(&[b"PORT"]);
    assert_eq!(r, vec![("PORT".to_string(), b"6379".to_vec())]);
    assert_eq!(names(&c.get(&[b"port", b"port", b"PORT"])), vec!["port"]);
    assert_eq!(names(&c.get(&[b"p[o]rt", b"po?t", b"port"])), vec!["port"]);
    assert!(c.get(&[b"nonexistent"]).is_empty());
    assert!(c.get(&[b""]).is_empty());
    assert_eq!(names(&c.get(&[b"slaveof"])), vec!["slaveof"]);

    let mut r = names(&c.get(&[b"port", b"MAXMEMORY*"]))
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    r.sort();
    assert_eq!(
        r,
        sv(&[
            "maxmemory",
            "maxmemory-clients",
            "maxmemory-eviction-tenacity",
            "maxmemory-policy",
            "maxmemory-samples",
            "port"
        ])
    );
    let mut r = names(&c.get(&[b"repl*only"]))
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    r.sort();
    assert_eq!(r, sv(&["replica-read-only"]));
    let mut r = names(&c.get(&[b"*read-only"]))
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    r.sort();
    assert_eq!(r, sv(&["replica-read-only", "slave-read-only"]));
    let mut r: Vec<String> = c
        .get(&[b"*ziplist*"])
        .into_iter()
        .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(&v)))
        .collect();
    r.sort();
    assert_eq!(
        r,
        sv(&[
            "hash-max-ziplist-entries=512",
            "hash-max-ziplist-value=64",
            "list-max-ziplist-size=-2",
            "zset-max-ziplist-entries=128",
            "zset-max-ziplist-value=64"
        ])
    );
    let mut r = names(&c.get(&[b"*PORT"]))
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    r.sort();
    assert_eq!(
        r,
        sv(&[
            "cluster-announce-bus-port",
            "cluster-announce-port",
            "cluster-announce-tls-port",
            "cluster-port",
            "port",
            "replica-announce-port",
            "slave-announce-port"
        ])
    );
    // Each name once even when several patterns match it.
    let all = c.get(&[b"*", b"*"]);
    // redis 7.0.15's 172, client-output-backpressure and the migration
    // user's name and password.
    assert_eq!(all.len(), 175);
}

#[test]
fn config_get_renders_like_redis() {
    let mut c = Config::new();
    set(
        &mut c,
        &[
            ("maxmemory", "1kb"),
            ("proto-max-bulk-len", "2mb"),
            ("notify-keyspace-events", "KEA"),
        ],
    )
    .expect("set");
    assert_eq!(get1(&c, "maxmemory"), "1024");
    assert_eq!(get1(&c, "proto-max-bulk-len"), "2097152");
    assert_eq!(get1(&c, "notify-keyspace-events"), "AKE");
    for (input, shown) in [
        ("Elg", "glE"),
        ("gl$shzxetdmn", "Am"),
        ("A", "A"),
        ("K", "K"),
        ("KEAKEA", "AKE"),
        ("d", "d"),
        ("Ex", "xE"),
        ("n", "n"),
        ("", ""),
    ] {
        set(&mut c, &[("notify-keyspace-events", input)]).expect("set");
        assert_eq!(get1(&c, "notify-keyspace-events"), shown, "{input}");
    }
    set(&mut c, &[("notify-keyspace-events", "Ex")]).expect("set");
    assert_eq!(c.notify_keyspace_events, notify::KEYEVENT | notify::EXPIRED);
    set(&mut c, &[("oom-score-adj", "relative")]).expect("set");
    assert_eq!(get1(&c, "oom-score-adj"), "yes");
    set(&mut c, &[("maxmemory-clients", "18446744073709551615")]).expect("set");
    assert_eq!(get1(&c, "maxmemory-clients"), "1%");
    set(&mut c, &[("maxmemory", "99999999999999999999k")]).expect("set");
    assert_eq!(get1(&c, "maxmemory"), "18446744073709550616");
    assert_eq!(c.maxmemory, 18446744073709550616);
    set(&mut c, &[("maxmemory", "")]).expect("set");
    assert_eq!(c.maxmemory, 0);
    set(
        &mut c,
        &[("latency-tracking-info-percentiles", "50 99.90 1e1")],
    )
    .expect("set");
    assert_eq!(get1(&c, "latency-tracking-info-percentiles"), "50 99.9 10");
    set(&mut c, &[("latency-tracking-info-percentiles", "")]).expect("set");
    assert_eq!(get1(&c, "latency-tracking-info-percentiles"), "");
    for (input, shown) in [
        ("save now", "save now"),
        ("now force", "now force"),
        ("nosave now default", "nosave now"),
        ("NOW", "now"),
        ("default", "default"),
    ] {
        set(&mut c, &[("shutdown-on-sigint", input)]).expect("set");
        assert_eq!(get1(&c, "shutdown-on-sigint"), shown, "{input}");
    }
    set(&mut c, &[("hz", "1000")]).expect("set");
    assert_eq!(get1(&c, "hz"), "500");
    set(&mut c, &[("hz", "0")]).expect("set");
    assert_eq!(get1(&c, "hz"), "1");
    set(
        &mut c,
        &[(
            "client-output-buffer-limit",
            "normal 1mb 2MB 3 replica 1 2 3",
        )],
    )
    .expect("set");
    assert_eq!(
        get1(&c, "client-output-buffer-limit"),
        "normal 1048576 2097152 3 slave 1 2 3 pubsub 33554432 8388608 60"
    );
    assert_eq!(
        set(&mut c, &[("client-output-buffer-limit", "")]),
        Ok(vec![])
    );
    set(&mut c, &[("maxmemory-policy", "ALLKEYS-LRU")]).expect("set");
    assert_eq!(get1(&c, "maxmemory-policy"), "allkeys-lru");
    set(
        &mut c,
        &[
            ("hash-max-ziplist-entries", "1"),
            ("hash-max-listpack-entries", "2"),
        ],
    )
    .expect("aliases");
    assert_eq!(get1(&c, "hash-max-ziplist-entries"), "2");
    assert_eq!(c.hash_max_listpack_entries, 2);
}

// ---------------------------------------------------------------- CONFIG SET

fn set_err(c: &mut Config, pairs: &[(&str, &str)]) -> String {
    set(c, pairs)
        .err()
        .unwrap_or_else(|| panic!("expected an error for {pairs:?}"))
}

fn failed(name: &str, why: &str) -> String {
    format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {why}")
}

#[test]
fn config_set_errors() {
    let mut c = Config::new();
    let int = "argument couldn't be parsed into an integer";
    assert_eq!(
        set_err(&mut c, &[("timeout", "abc")]),
        failed("timeout", int)
    );
    assert_eq!(
        set_err(&mut c, &[("timeout", "01")]),
        failed("timeout", int)
    );
    assert_eq!(
        set_err(&mut c, &[("timeout", "+5")]),
        failed("timeout", int)
    );
    assert_eq!(
        set_err(&mut c, &[("timeout", " 5")]),
        failed("timeout", int)
    );
    assert_eq!(set_err(&mut c, &[("TIMEOUT", "x")]), failed("timeout", int));
    assert_eq!(
        set_err(&mut c, &[("timeout", "-1")]),
        failed(
            "timeout",
            "argument must be between 0 and 2147483647 inclusive"
        )
    );
    assert_eq!(
        set_err(&mut c, &[("foo", "1")]),
        "ERR Unknown option or number of arguments for CONFIG SET - 'foo'"
    );
    assert_eq!(
        set_err(&mut c, &[("timeout", "1"), ("foo", "1")]),
        "ERR Unknown option or number of arguments for CONFIG SET - 'foo'"
    );
    assert_eq!(
        set_err(&mut c, &[("databases", "5")]),
        failed("databases", "can't set immutable config")
    );
    assert_eq!(
        set_err(&mut c, &[("DATABASES", "5")]),
        failed("DATABASES", "can't set immutable config")
    );
    assert_eq!(
        set_err(&mut c, &[("databases", "5"), ("foo", "1")]),
        failed("databases", "can't set immutable config")
    );
    assert_eq!(
        set_err(&mut c, &[("foo", "1"), ("databases", "5")]),
        "ERR Unknown option or number of arguments for CONFIG SET - 'foo'"
    );
    assert_eq!(
        set_err(&mut c, &[("timeout", "abc"), ("foo", "1")]),
        "ERR Unknown option or number of arguments for CONFIG SET - 'foo'"
    );
    assert_eq!(
        set_err(&mut c, &[("timeout", "1"), ("TIMEOUT", "1")]),
        failed("TIMEOUT", "duplicate parameter")
    );
    assert_eq!(
        set_err(&mut c, &[("timeout", "abc"), ("timeout", "1")]),
        failed("timeout", "duplicate parameter")
    );
    assert_eq!(
        set_err(&mut c, &[("HASH-MAX-ZIPLIST-ENTRIES", "x")]),
        failed("hash-max-ziplist-entries", int)
    );
    assert_eq!(
        set_err(&mut c, &[("maxmemory", "-1")]),
        failed("maxmemory", "argument must be a memory value")
    );
    assert_eq!(
        set_err(&mut c, &[("maxmemory", "1.5mb")]),
        failed("maxmemory", "argument must be a memory value")
    );
    let pm = "argument must be between 1048576 and 9223372036854775807 inclusive";
    assert_eq!(
        set_err(&mut c, &[("proto-max-bulk-len", "99999999999999999999")]),
        failed("proto-max-bulk-len", pm)
    );
    assert_eq!(
        set_err(&mut c, &[("proto-max-bulk-len", "18446744073709551615")]),
        failed("proto-max-bulk-len", pm)
    );
    assert_eq!(
        set_err(&mut c, &[("proto-max-bulk-len", "1k")]),
        failed("proto-max-bulk-len", pm)
    );
    assert_eq!(
        set_err(&mut c, &[("maxmemory-clients", "101%")]),
        failed(
            "maxmemory-clients",
            "percentage argument must be less or equal to 100"
        )
    );
    assert_eq!(
        set_err(&mut c, &[("maxmemory-clients", "x")]),
        failed(
            "maxmemory-clients",
            "argument must be a memory or percent value"
        )
    );
    assert_eq!(
        set_err(&mut c, &[("maxmemory-policy", "x")]),
        failed(
            "maxmemory-policy",
            "argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction"
        )
    );
    assert_eq!(
        set_err(&mut c, &[("maxmemory-policy", "volatile-lru allkeys-lru")]),
        failed(
            "maxmemory-policy",
            "argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction"
        )
    );
    assert_eq!(
        set_err(&mut c, &[("appendfsync", "x")]),
        failed(
            "appendfsync",
            "argument(s) must be one of the following: everysec, always, no"
        )
    );
    assert_eq!(
        set_err(&mut c, &[("appendonly", "maybe")]),
        failed("appendonly", "argument must be 'yes' or 'no'")
    );
    let save = "Invalid save parameters";
    assert_eq!(set_err(&mut c, &[("save", "10 1 5")]), failed("save", save));
    assert_eq!(set_err(&mut c, &[("save", "10  1")]), failed("save", save));
    assert_eq!(set_err(&mut c, &[("save", "0 1")]), failed("save", save));
    assert_eq!(set_err(&mut c, &[("save", "  1 2")]), failed("save", save));
    assert_eq!(set_err(&mut c, &[("save", "1 2 ")]), failed("save", save));
    assert_eq!(
        set_err(&mut c, &[("save", "10 \"\"")]),
        failed("save", save)
    );
    assert_eq!(
        set_err(&mut c, &[("dir", "/tmp")]),
        failed("dir", "can't set protected config")
    );
    assert_eq!(
        set_err(&mut c, &[("dbfilename", "x.rdb")]),
        failed("dbfilename", "can't set protected config")
    );
    assert_eq!(
        set_err(&mut c, &[("notify-keyspace-events", "xyz")]),
        failed(
            "notify-keyspace-events",
            "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."
        )
    );
    assert_eq!(
        set_err(&mut c, &[("daemonize", "no")]),
        failed("daemonize", "can't set immutable config")
    );
    assert_eq!(
        set_err(&mut c, &[("unixsocketperm", "0")]),
        failed("unixsocketperm", "can't set immutable config")
    );
    assert_eq!(
        set_err(&mut c, &[("slaveof", "no one")]),
        failed("slaveof", "can't set immutable config")
    );
    // codis-server: not re-applied at runtime.
    assert_eq!(
        set_err(&mut c, &[("port", "6380")]),
        failed("port", "can't set immutable config")
    );
    assert_eq!(
        set_err(&mut c, &[("bind", "127.0.0.1")]),
        failed("bind", "can't set immutable config")
    );
    assert_eq!(
        set_err(&mut c, &[("io-threads", "2")]),
        failed("io-threads", "can't set immutable config")
    );
    assert_eq!(
        set_err(&mut c, &[("client-output-buffer-limit", "normal 1 2")]),
        failed(
            "client-output-buffer-limit",
            "Wrong number of arguments in buffer limit configuration."
        )
    );
    for bad in ["pubsub x 2 3", "pubsub 1 2 x", "pubsub 1 2 -3"] {
        assert_eq!(
            set_err(&mut c, &[("client-output-buffer-limit", bad)]),
            failed(
                "client-output-buffer-limit",
                "Error in hard, soft or soft_seconds setting in buffer limit configuration."
            )
        );
    }
    assert_eq!(
        set_err(&mut c, &[("client-output-buffer-limit", "master 1 2 3")]),
        failed(
            "client-output-buffer-limit",
            "Invalid client class specified in buffer limit configuration."
        )
    );
    assert_eq!(
        set_err(&mut c, &[("oom-score-adj-values", "1 2")]),
        failed("oom-score-adj-values", "wrong number of arguments")
    );
    assert_eq!(
        set_err(&mut c, &[("oom-score-adj-values", "1 x 2")]),
        failed(
            "oom-score-adj-values",
            "Invalid oom-score-adj-values, elements must be between -2000 and 2000."
        )
    );
    assert_eq!(
        set_err(&mut c, &[("shutdown-on-sigint", "x")]),
        failed(
            "shutdown-on-sigint",
            "argument(s) must be one of the following: default, save, nosave, now, force"
        )
    );
    assert_eq!(
        set_err(&mut c, &[("shutdown-on-sigint", "")]),
        failed(
            "shutdown-on-sigint",
            "argument(s) must be one of the following: default, save, nosave, now, force"
        )
    );
    assert_eq!(
        set_err(&mut c, &[("requirepass", "a"), ("appendfilename", "x")]),
        failed("appendfilename", "can't set immutable config")
    );
    // Nothing above changed anything.
    let fresh = Config::new();
    assert_eq!(c.get(&[b"*"]), fresh.get(&[b"*"]));
}

#[test]
fn config_set_is_atomic_and_reports_changes() {
    let mut c = Config::new();
    let e = set_err(
        &mut c,
        &[("maxmemory", "1mb"), ("timeout", "5"), ("hz", "x")],
    );
    assert_eq!(
        e,
        failed("hz", "argument couldn't be parsed into an integer")
    );
    assert_eq!(c.maxmemory, 0);
    assert_eq!(c.timeout_secs, 0);
    assert_eq!(c.hz, 10);

    let changed = set(
        &mut c,
        &[
            ("maxmemory", "1mb"),
            ("timeout", "0"),
            ("requirepass", "s3cret"),
            ("save", ""),
        ],
    )
    .expect("set");
    assert_eq!(changed, vec!["maxmemory", "requirepass", "save"]);
    assert_eq!(c.maxmemory, 1 << 20);
    set(&mut c, &[("maxmemory", "1m")]).expect("set");
    assert_eq!(c.maxmemory, 1_000_000);
    assert_eq!(c.requirepass.as_deref(), Some(&b"s3cret"[..]));
    assert!(c.save_params.is_empty());
    let changed = set(&mut c, &[("requirepass", "")]).expect("set");
    assert_eq!(changed, vec!["requirepass"]);
    assert_eq!(c.requirepass, None);
    let changed = set(&mut c, &[("save", "1 2 3 4"), ("slave-read-only", "no")]).expect("set");
    assert_eq!(changed, vec!["save", "replica-read-only"]);
    assert_eq!(
        c.save_params,
        vec![
            SaveParam {
                seconds: 1,
                changes: 2
            },
            SaveParam {
                seconds: 3,
                changes: 4
            }
        ]
    );
    assert!(!c.replica_read_only);
    assert_eq!(get1(&c, "slave-read-only"), "no");
    let changed = set(
        &mut c,
        &[("loglevel", "warning"), ("lazyfree-lazy-user-del", "yes")],
    )
    .expect("set");
    assert_eq!(changed, vec!["loglevel", "lazyfree-lazy-user-del"]);
    assert_eq!(c.log_level(), crate::log::Level::Warning);
    assert!(c.lazyfree_lazy_user_del);
    assert!(set(&mut c, &[]).expect("nothing").is_empty());
}

#[test]
fn protected_configs() {
    let d = scratch("protected");
    let ds = d.to_string_lossy().into_owned();
    let mut c = load(&sv(&["--enable-protected-configs", "local"])).expect("loads");
    let p: &[(&[u8], &[u8])] = &[(b"dir", ds.as_bytes())];
    assert_eq!(
        c.set_from(p, false),
        Err(failed("dir", "can't set protected config"))
    );
    assert_eq!(c.set_from(p, true), Ok(vec!["dir"]));
    assert_eq!(
        Path::new(&c.dir),
        std::fs::canonicalize(&d).expect("canon").as_path()
    );
    let mut c = load(&sv(&["--enable-protected-configs", "yes"])).expect("loads");
    assert_eq!(
        set_err(&mut c, &[("dir", "/nonexistent-codis")]),
        failed("dir", "No such file or directory")
    );
    assert_eq!(
        set_err(&mut c, &[("dbfilename", "a/b")]),
        failed("dbfilename", "dbfilename can't be a path, just a filename")
    );
    assert_eq!(
        set(&mut c, &[("dbfilename", "x.rdb")]),
        Ok(vec!["dbfilename"])
    );
    assert_eq!(c.dbfilename, "x.rdb");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn sensitive_parameters() {
    assert!(Config::is_sensitive(b"requirepass"));
    assert!(Config::is_sensitive(b"MASTERAUTH"));
    assert!(!Config::is_sensitive(b"port"));
    assert!(!Config::is_sensitive(b"nosuch"));
}

// ---------------------------------------------------------------- CONFIG REWRITE

#[test]
fn rewrite_round_trips() {
    let d = scratch("rewrite");
    let conf = d.join("r.conf");
    std::fs::write(
        &conf,
        b"# keep me\nport 7002\nsave 10 1\nsave 20 2\nunknown-but-kept\nmaxmemory 1mb\n",
    )
    .expect("write");
    // (unknown directives would fail loading, so load a file without it)
    std::fs::write(
        &conf,
        b"# keep me\nport 7002\nsave 10 1\nsave 20 2\nmaxmemory 1mb\n",
    )
    .expect("write");
    let path = conf.to_string_lossy().into_owned();
    let mut c = load(&sv(&[&path])).expect("loads");
    set(
        &mut c,
        &[
            ("maxmemory", "2mb"),
            ("requirepass", "a b\"c"),
            ("save", ""),
        ],
    )
    .expect("set");
    c.rewrite().expect("rewrite");
    let text = std::fs::read_to_string(&conf).expect("read");
    assert!(
        text.starts_with("# keep me\nport 7002\nsave \"\"\nmaxmemory 2097152\n"),
        "{text}"
    );
    assert!(text.contains("# Generated by CONFIG REWRITE\n"), "{text}");
    assert!(text.contains("requirepass \"a b\\\"c\"\n"), "{text}");
    let again = load(&sv(&[&path])).expect("reloads");
    assert_eq!(again.get(&[b"*"]), c.get(&[b"*"]));
    // Rewriting twice is stable.
    again.rewrite().expect("rewrite");
    assert_eq!(std::fs::read_to_string(&conf).expect("read"), text);
    assert_eq!(
        Config::new().rewrite(),
        Err("ERR The server is running without a config file".to_string())
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// REPLICAOF changes `replicaof`, which CONFIG REWRITE writes back (Sentinel
/// and the Codis dashboard rely on it); a master's line goes, as Redis'.
#[test]
fn rewrite_replicaof() {
    let d = scratch("rewrite-replicaof");
    let conf = d.join("r.conf");
    std::fs::write(&conf, b"port 7003\nreplicaof 10.0.0.1 6379\n").expect("write");
    let path = conf.to_string_lossy().into_owned();
    let mut c = load(&sv(&[&path])).expect("loads");
    assert_eq!(c.replicaof, Some(("10.0.0.1".to_string(), 6379)));
    c.replicaof = Some(("127.0.0.1".to_string(), 7000));
    c.rewrite().expect("rewrite");
    let text = std::fs::read_to_string(&conf).expect("read");
    assert_eq!(text, "port 7003\nreplicaof 127.0.0.1 7000\n");
    c.replicaof = None;
    c.rewrite().expect("rewrite");
    let text = std::fs::read_to_string(&conf).expect("read");
    assert_eq!(text, "port 7003\n");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn runtime_adjustments_and_validators() {
    // Runtime resize of the replication backlog never goes below 16k, a
    // config-file value is kept as written.
    let mut c = load(&sv(&["--repl-backlog-size", "1"])).expect("loads");
    assert_eq!(get1(&c, "repl-backlog-size"), "1");
    set(&mut c, &[("repl-backlog-size", "100")]).expect("set");
    assert_eq!(get1(&c, "repl-backlog-size"), "16384");
    assert_eq!(
        set_err(&mut c, &[("cluster-announce-hostname", "a b")]),
        failed(
            "cluster-announce-hostname",
            "Hostnames may only contain alphanumeric characters, hyphens or dots"
        )
    );
    let long = "a".repeat(300);
    assert_eq!(
        set_err(&mut c, &[("cluster-announce-hostname", &long)]),
        failed(
            "cluster-announce-hostname",
            "Hostnames must be less than 256 characters"
        )
    );
    set(&mut c, &[("cluster-announce-hostname", "")]).expect("empty is fine");
    assert_eq!(
        set_err(&mut c, &[("activedefrag", "yes")]),
        failed(
            "activedefrag",
            "Active defragmentation cannot be enabled: it requires a Redis server compiled with a modified Jemalloc \
             like the one shipped by default with the Redis source distribution"
        )
    );
    // strtod accepts hexadecimal floats.
    set(
        &mut c,
        &[("latency-tracking-info-percentiles", "0x10 0x1.8p1")],
    )
    .expect("set");
    assert_eq!(c.latency_tracking_info_percentiles, vec![16.0, 3.0]);
    assert_eq!(
        set_err(&mut c, &[("latency-tracking-info-percentiles", "nan")]),
        failed(
            "latency-tracking-info-percentiles",
            "Invalid latency-tracking-info-percentiles parameters"
        )
    );
    assert_eq!(c.get_one("MIN-SLAVES-TO-WRITE").as_deref(), Some(&b"0"[..]));
    assert_eq!(c.get_one("nosuch"), None);
}
