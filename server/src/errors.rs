//! Every error reply text the server sends, in one place (Redis 7.0.15 and
//! Codis texts, quoted exactly: clients compare them). Handlers return a
//! [`CmdError`]; only the execution gate turns it into bytes and counts it in
//! `INFO errorstats` by its first word.

use std::borrow::Cow;

/// A command failure. Static texts cover the common cases without allocating;
/// `Msg` carries formatted ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdError {
    WrongType,
    Syntax,
    NotInteger,
    NotFloat,
    Overflow,
    NoSuchKey,
    OutOfRange,
    InvalidExpire(&'static str),
    NoAuth,
    Static(&'static str),
    Msg(String),
    /// A key of the command is in flight (a script refused whole): the
    /// gate reports it like its own migration refusal (`KEY_BEING_MIGRATED`,
    /// code 1 inside SLOTSMGRT-EXEC-WRAPPER).
    Migrating,
}

pub type CmdResult = Result<(), CmdError>;

impl CmdError {
    pub fn text(&self) -> Cow<'_, str> {
        Cow::Borrowed(match self {
            CmdError::WrongType => WRONGTYPE,
            CmdError::Syntax => SYNTAX,
            CmdError::NotInteger => NOT_INTEGER,
            CmdError::NotFloat => NOT_FLOAT,
            CmdError::Overflow => OVERFLOW,
            CmdError::NoSuchKey => NO_SUCH_KEY,
            CmdError::OutOfRange => OUT_OF_RANGE,
            CmdError::NoAuth => NOAUTH,
            CmdError::InvalidExpire(cmd) => {
                return Cow::Owned(format!("ERR invalid expire time in '{cmd}' command"));
            }
            CmdError::Static(s) => s,
            CmdError::Msg(s) => s.as_str(),
            CmdError::Migrating => KEY_BEING_MIGRATED,
        })
    }

    pub fn msg(s: impl Into<String>) -> Self {
        CmdError::Msg(s.into())
    }
}

/// A write to a key that is being shipped to another server (codis.md §2.7.4).
pub const KEY_BEING_MIGRATED: &str = "ERR the specified key is being migrated";

// Transactions (multi.c).
pub const MULTI_NESTED: &str = "ERR MULTI calls can not be nested";
pub const DISCARD_WITHOUT_MULTI: &str = "ERR DISCARD without MULTI";
pub const EXEC_WITHOUT_MULTI: &str = "ERR EXEC without MULTI";
pub const WATCH_IN_MULTI: &str = "ERR WATCH inside MULTI is not allowed";
pub const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";
/// A transaction that would write a key being migrated is refused whole.
pub const EXECABORT_MIGRATING: &str =
    "EXECABORT Transaction discarded because of: ERR the specified key is being migrated";
pub const NOT_IN_TRANSACTION: &str = "ERR Command not allowed inside a transaction";

// Pub/sub (pubsub.c).
pub const SSUBSCRIBE_DENY_BLOCKING: &str =
    "ERR SSUBSCRIBE isn't allowed for a DENY BLOCKING client";

/// A RESP2 client in subscribed context ran another command.
pub fn pubsub_context(cmd: &str) -> String {
    format!(
        "ERR Can't execute '{cmd}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    )
}
// --- Codis inspection, SLOTSRESTORE and sync migration (cmd/codis.rs, migrate/sync.rs;
// codis.md §2.3-§2.6, Codis' lower-case texts)
pub const CODIS_INVALID_TTL: &str = "ERR invalid ttl value, must be >= 0";
pub const CODIS_BAD_PAYLOAD: &str = "ERR dump payload version or checksum are wrong";
pub const CODIS_BAD_DATA_FORMAT: &str = "ERR bad data format";
pub const MGRT_CONNECT_TIMEOUT: &str = "IOERR error or timeout connecting to the client";
pub const MGRT_WRITE: &str = "IOERR error or timeout writing to target";
pub const MGRT_READ: &str = "IOERR error or timeout reading from target";
pub const MGRT_AUTH_FAILED: &str = "ERR error on slotsrestore, auth failed";
pub const MGRT_SELECT_FAILED: &str = "ERR error on slotsrestore, select failed";
pub const MGRT_FAILED: &str = "ERR error on slotsrestore, migration failed";

/// `ERR invalid slot number = <n>`
pub fn invalid_slot(n: i64) -> String {
    format!("ERR invalid slot number = {n}")
}

/// `ERR invalid slot count = <n>` (SLOTSINFO)
pub fn invalid_slot_count(n: i64) -> String {
    format!("ERR invalid slot count = {n}")
}

/// `ERR invalid timeout = <n>` (sync migration)
pub fn invalid_timeout(n: i64) -> String {
    format!("ERR invalid timeout = {n}")
}

/// `ERR step <n>, miss = '<key>'` (SLOTSCHECK)
pub fn slotscheck_miss(step: u8, key: &[u8]) -> String {
    format!("ERR step {step}, miss = '{}'", lossy(key))
}

/// `ERR Can't connect to target node: <reason>` (sync migration)
pub fn cant_connect(reason: &str) -> String {
    format!("ERR Can't connect to target node: {reason}")
}
// --- DUMP / RESTORE (cmd/dump.rs; Redis 7.0.15 texts)
pub const BUSYKEY: &str = "BUSYKEY Target key name already exists.";
pub const RESTORE_INVALID_TTL: &str = "ERR Invalid TTL value, must be >= 0";
pub const RESTORE_BAD_PAYLOAD: &str = "ERR DUMP payload version or checksum are wrong";
pub const RESTORE_BAD_DATA: &str = "ERR Bad data format";
pub const RESTORE_INVALID_IDLETIME: &str = "ERR Invalid IDLETIME value, must be >= 0";
pub const RESTORE_INVALID_FREQ: &str = "ERR Invalid FREQ value, must be >= 0 and <= 255";
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const SYNTAX: &str = "ERR syntax error";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const NO_SUCH_KEY: &str = "ERR no such key";
pub const OUT_OF_RANGE: &str = "ERR value is out of range";
pub const NOAUTH: &str = "NOAUTH Authentication required.";
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
pub const NO_PASSWORD: &str = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";
pub const INVALID_DB: &str = "ERR DB index is out of range";
pub const MAX_CLIENTS: &str = "ERR max number of clients reached";
pub const SAME_OBJECT: &str = "ERR source and destination objects are the same";
pub const INCR_NAN: &str = "ERR increment would produce NaN or Infinity";
pub const STRING_TOO_LONG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
pub const INVALID_CURSOR: &str = "ERR invalid cursor";
pub const OFFSET_OUT_OF_RANGE: &str = "ERR offset is out of range";
/// Protected mode's refusal (Redis 7.0.15's text, sent raw before closing).
pub const PROTECTED_MODE: &str = "DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.";
/// A reply whose size the client chose (random picks with repeats) would
/// pass `proto-max-bulk-len` (cmd/util.rs `ReplyBudget`; codis-server's own).
pub const REPLY_TOO_LARGE: &str =
    "ERR reply too large: the count makes a reply longer than proto-max-bulk-len";
pub const TIMEOUT_NEGATIVE: &str = "ERR timeout is negative";
pub const DECREMENT_OVERFLOW: &str = "ERR decrement would overflow";
pub const LCS_NOT_STRINGS: &str = "ERR The specified keys must contain string values";
pub const LCS_IDX_AND_LEN: &str =
    "ERR If you want both the length and indexes, please just use IDX.";
pub const LCS_TOO_LONG: &str = "ERR String too long for LCS";
pub const LCS_EXCEEDS_LIMIT: &str =
    "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len";
pub const LCS_ALLOC_FAILED: &str =
    "ERR Insufficient memory, failed allocating transient memory for LCS";

// --- connection / server / COMMAND / CONFIG / DEBUG (cmd/conn.rs, admin.rs, info.rs, command.rs)
pub const INT_ARG_OUT_OF_RANGE: &str =
    "ERR value is out of range, value must between -2147483648 and 2147483647";
pub const NOPROTO: &str = "NOPROTO unsupported protocol version";
pub const HELLO_PROTO_NOT_INT: &str = "ERR Protocol version is not an integer or out of range";
pub const HELLO_NOAUTH: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";
pub const CLIENT_NAME_INVALID: &str =
    "ERR Client names cannot contain spaces, newlines or special characters.";
pub const NO_SUCH_CLIENT: &str = "ERR No such client";
pub const CLIENT_ID_NOT_POSITIVE: &str = "ERR client-id should be greater than 0";
pub const INVALID_CLIENT_ID: &str = "ERR Invalid client ID";
pub const PAUSE_TIMEOUT_NOT_INT: &str = "ERR timeout is not an integer or out of range";
pub const PAUSE_MODE: &str = "ERR CLIENT PAUSE mode must be WRITE or ALL";
pub const CACHING_WITHOUT_TRACKING: &str = "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled";
pub const UNBLOCK_REASON: &str = "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR";
pub const TRACKING_REDIRECT_MISSING: &str = "ERR The client ID you want redirect to does not exist";
pub const TRACKING_SINGLE_REDIRECT: &str =
    "ERR A client can only redirect to a single other client";
// CLIENT TRACKING / CACHING (networking.c).
pub const TRACKING_PREFIX_WITHOUT_BCAST: &str =
    "ERR PREFIX option requires BCAST mode to be enabled";
pub const TRACKING_BCAST_SWITCH: &str = "ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.";
pub const TRACKING_OPTIONS_WITH_BCAST: &str = "ERR OPTIN and OPTOUT are not compatible with BCAST";
pub const TRACKING_OPTIN_AND_OPTOUT: &str = "ERR You can't specify both OPTIN mode and OPTOUT mode";
pub const TRACKING_OPTIN_OPTOUT_SWITCH: &str = "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.";
pub const CACHING_YES_WITHOUT_OPTIN: &str =
    "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.";
pub const CACHING_NO_WITHOUT_OPTOUT: &str =
    "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.";
pub const MONITOR_DENY_BLOCKING: &str = "ERR MONITOR isn't allowed for DENY BLOCKING client";
pub const INVALID_FIRST_DB: &str = "ERR invalid first DB index";
pub const INVALID_SECOND_DB: &str = "ERR invalid second DB index";
pub const NO_SHUTDOWN_IN_PROGRESS: &str = "ERR No shutdown in progress.";
pub const SHUTDOWN_FAILED: &str = "ERR Errors trying to SHUTDOWN. Check logs.";
pub const RELOAD_FAILED: &str = "ERR Error trying to load the RDB dump";
pub const RELOAD_OPTIONS: &str =
    "ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.";
pub const BGSAVE_IN_PROGRESS: &str = "ERR Background save already in progress";
pub const BGSAVE_OTHER_CHILD: &str = "ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible";
pub const AOFRW_IN_PROGRESS: &str = "ERR Background append only file rewriting already in progress";
pub const AOFRW_FAILED: &str = "ERR Can't execute an AOF background rewriting. Please check the server logs for more information.";
/// SAVE / BGSAVE that could not write the file (Redis' `shared.err`).
pub const SAVE_FAILED: &str = "ERR";
pub const LOADING: &str = "LOADING Redis is loading the dataset in memory";
// Replication (Redis 7.0's replication.c / server.c texts).
pub const READONLY_REPLICA: &str = "READONLY You can't write against a read only replica.";
pub const MASTERDOWN: &str =
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.";
pub const NOREPLICAS: &str = "NOREPLICAS Not enough good replicas to write.";
pub const NOMASTERLINK: &str = "NOMASTERLINK Can't SYNC while not connected with my master";
pub const REPLICAOF_FAILING_OVER: &str = "ERR REPLICAOF not allowed while failing over.";
pub const NOMASTERLINK_FAILING_OVER: &str = "NOMASTERLINK Can't SYNC while failing over";
pub const INVALID_MASTER_PORT: &str = "ERR Invalid master port";
pub const WAIT_ON_REPLICA: &str = "ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.";
pub const REPLICAOF_ALREADY: &str = "OK Already connected to specified master";
pub const MISCONF: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";
pub const DEBUG_NOT_ALLOWED: &str = "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.";
pub const NOT_POSITIVE: &str = "ERR value is out of range, must be positive";
pub const GETKEYS_INVALID_COMMAND: &str = "ERR Invalid command specified";
pub const GETKEYS_NO_KEYS: &str = "ERR The command has no key arguments";
pub const GETKEYS_BAD_ARITY: &str = "ERR Invalid number of arguments specified for command";
pub const GETKEYS_BAD_ARGS: &str = "ERR Invalid arguments specified for command";
pub const EXPIRE_NX_AND_OTHERS: &str =
    "ERR NX and XX, GT or LT options at the same time are not compatible";
pub const EXPIRE_GT_AND_LT: &str = "ERR GT and LT options at the same time are not compatible";
/// Followed by the offending option (up to its first NUL byte, as Redis' `%s`).
pub const UNSUPPORTED_OPTION_PREFIX: &str = "ERR Unsupported option ";
pub const LFU_POLICY_SELECTED: &str = "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
pub const LFU_POLICY_NOT_SELECTED: &str = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
// --- bitmaps / HyperLogLog / SORT (cmd/bits.rs, hll.rs, sort.rs)
pub const BIT_OFFSET_INVALID: &str = "ERR bit offset is not an integer or out of range";
pub const BIT_VALUE_INVALID: &str = "ERR bit is not an integer or out of range";
pub const BITPOS_BIT_ARG: &str = "ERR The bit argument must be 1 or 0.";
pub const BITOP_NOT_SINGLE: &str = "ERR BITOP NOT must be called with a single source key.";
pub const BITFIELD_TYPE: &str = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";
pub const BITFIELD_OVERFLOW_TYPE: &str = "ERR Invalid OVERFLOW type specified";
pub const BITFIELD_RO_GET_ONLY: &str = "ERR BITFIELD_RO only supports the GET subcommand";
pub const HLL_WRONGTYPE: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
pub const HLL_INVALID: &str = "INVALIDOBJ Corrupted HLL object detected";
pub const SORT_NOT_DOUBLE: &str = "ERR One or more scores can't be converted into double";
// --- sets (cmd/set.rs); ZINTERCARD shares the numkeys/LIMIT texts
pub const NUMKEYS_NOT_POSITIVE: &str = "ERR numkeys should be greater than 0";
pub const NUMKEYS_TOO_MANY: &str = "ERR Number of keys can't be greater than number of args";
pub const LIMIT_NEGATIVE: &str = "ERR LIMIT can't be negative";
pub const COUNT_RANGE_NOT_LONG_MIN: &str =
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";
// --- sorted sets (cmd/zset.rs)
pub const ZADD_XX_NX: &str = "ERR XX and NX options at the same time are not compatible";
pub const ZADD_GT_LT_NX: &str = "ERR GT, LT, and/or NX options at the same time are not compatible";
pub const ZADD_INCR_PAIR: &str = "ERR INCR option supports a single increment-element pair";
pub const ZSCORE_NAN: &str = "ERR resulting score is not a number (NaN)";
// GEO (geo.c's texts).
pub const GEO_BAD_UNIT: &str = "ERR unsupported unit provided. please use M, KM, FT, MI";
pub const GEO_BAD_MEMBER: &str = "ERR could not decode requested zset member";
pub const GEO_NEED_RADIUS: &str = "ERR need numeric radius";
pub const GEO_NEGATIVE_RADIUS: &str = "ERR radius cannot be negative";
pub const GEO_NEED_WIDTH: &str = "ERR need numeric width";
pub const GEO_NEED_HEIGHT: &str = "ERR need numeric height";
pub const GEO_NEGATIVE_BOX: &str = "ERR height or width cannot be negative";
pub const GEO_COUNT_NOT_POSITIVE: &str = "ERR COUNT must be > 0";
pub const GEO_ANY_NEEDS_COUNT: &str = "ERR the ANY argument requires COUNT argument";

/// A longitude/latitude pair outside the storable limits (`%f` each).
pub fn geo_invalid_pair(lon: f64, lat: f64) -> String {
    format!("ERR invalid longitude,latitude pair {lon:.6},{lat:.6}")
}

/// STORE/STOREDIST (or GEOSEARCHSTORE) with WITHDIST/WITHHASH/WITHCOORD.
pub fn geo_store_with_options(geosearchstore: bool) -> String {
    format!(
        "ERR {} is not compatible with WITHDIST, WITHHASH and WITHCOORD options",
        if geosearchstore {
            "GEOSEARCHSTORE"
        } else {
            "STORE option in GEORADIUS"
        }
    )
}

/// GEOSEARCH without FROMMEMBER or FROMLONLAT (`cmd` as the client sent it).
pub fn geo_need_from(cmd: &str) -> String {
    format!("ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {cmd}")
}

/// GEOSEARCH without BYRADIUS or BYBOX (`cmd` as the client sent it).
pub fn geo_need_by(cmd: &str) -> String {
    format!("ERR exactly one of BYRADIUS and BYBOX can be specified for {cmd}")
}

pub const ZRANGE_NOT_FLOAT: &str = "ERR min or max is not a float";
pub const ZRANGE_NOT_LEX: &str = "ERR min or max not valid string range item";
pub const ZRANGE_LIMIT_RANK: &str =
    "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX";
pub const ZRANGE_WITHSCORES_LEX: &str =
    "ERR syntax error, WITHSCORES not supported in combination with BYLEX";
pub const WEIGHT_NOT_FLOAT: &str = "ERR weight value is not a float";
pub const COUNT_NOT_POSITIVE: &str = "ERR count should be greater than 0";
pub const JUST_OUT_OF_RANGE: &str = "ERR value is out of range";
/// `ERR at least 1 input key is needed for '<cmd>' command` (prefix, name, suffix).
pub const AT_LEAST_ONE_KEY_PREFIX: &str = "ERR at least 1 input key is needed for '";
pub const AT_LEAST_ONE_KEY_SUFFIX: &str = "' command";
// --- hashes (cmd/hash.rs)
pub const HASH_VALUE_NOT_INTEGER: &str = "ERR hash value is not an integer";
pub const HASH_VALUE_NOT_FLOAT: &str = "ERR hash value is not a float";
pub const VALUE_NAN_OR_INF: &str = "ERR value is NaN or Infinity";
// --- lists / blocking (cmd/list.rs, block.rs)
pub const TIMEOUT_NOT_FLOAT: &str = "ERR timeout is not a float or out of range";
pub const INDEX_OUT_OF_RANGE: &str = "ERR index out of range";
pub const LPOS_RANK_ZERO: &str = "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list";
pub const LPOS_COUNT_NEGATIVE: &str = "ERR COUNT can't be negative";
pub const LPOS_MAXLEN_NEGATIVE: &str = "ERR MAXLEN can't be negative";
pub const UNBLOCKED: &str = "UNBLOCKED client unblocked via CLIENT UNBLOCK";
// --- async migration (migrate/asyncm.rs, cmd/slotsasync.rs; codis.md §2.7)
pub const ASYNC_DB_BEING_MIGRATED: &str = "ERR the specified DB is being migrated";
pub const ASYNC_CONN_CLOSED: &str = "ERR interrupted: connection closed";
pub const ASYNC_TIMEOUT: &str = "ERR interrupted: migration timeout";
pub const ASYNC_CANCELED: &str = "ERR interrupted: canceled";
pub const ASYNC_NEW_CONN: &str = "ERR interrupted: build new connection";
pub const ASYNC_IDLE: &str = "ERR interrupted: idle timeout";
pub const ASYNC_INVALID_CLIENT: &str = "ERR invalid client, permission denied";
pub const WRAPPER_NO_KEY: &str = "ERR the specified key doesn't exist";
/// SLOTSRESTORE-ASYNC* ACK messages (code -1; no `ERR` prefix: they travel
/// inside the ACK array).
pub const RA_DB_MIGRATED: &str = "the specified DB is being migrated";
pub const RA_BAD_CHECKSUM: &str = "invalid payload checksum";
pub const RA_BAD_TYPE: &str = "invalid payload type";
pub const RA_BAD_BODY: &str = "invalid payload body";
pub const RA_INVALID_PASSWORD: &str = "invalid password";
pub const RA_NO_PASSWORD: &str = "Client sent AUTH, but no password is set";

/// `ERR invalid value of <name> (<text>)` (async migration arguments)
pub fn async_invalid_value(name: &str, text: &[u8]) -> String {
    format!("ERR invalid value of {name} ({})", lossy(text))
}

/// `ERR create client to <host>:<port> failed`
pub fn async_create_client(host: &str, port: u16) -> String {
    format!("ERR create client to {host}:{port} failed")
}

/// `ERR invalid command specified (<name>)` (SLOTSMGRT-EXEC-WRAPPER, code -1)
pub fn wrapper_invalid_command(name: &[u8]) -> String {
    format!("ERR invalid command specified ({})", lossy(name))
}

/// `ERR wrong number of arguments for command (<name>)` (SLOTSMGRT-EXEC-WRAPPER)
pub fn wrapper_wrong_arity(name: &[u8]) -> String {
    format!(
        "ERR wrong number of arguments for command ({})",
        lossy(name)
    )
}

/// `wrong number of arguments (argc=N,cmd=X)` (SLOTSRESTORE-ASYNC ACK)
pub fn ra_wrong_arity(argc: usize, cmd: &[u8]) -> String {
    format!("wrong number of arguments (argc={argc},cmd={})", lossy(cmd))
}

/// `unknown command (argc=N,cmd=X)` (SLOTSRESTORE-ASYNC ACK)
pub fn ra_unknown(argc: usize, cmd: &[u8]) -> String {
    format!("unknown command (argc={argc},cmd={})", lossy(cmd))
}

/// `invalid TTL value (TTL=<text>)`
pub fn ra_invalid_ttl(text: &[u8]) -> String {
    format!("invalid TTL value (TTL={})", lossy(text))
}

/// `invalid Hint value (Hint=<text>)`
pub fn ra_invalid_hint(text: &[u8]) -> String {
    format!("invalid Hint value (Hint={})", lossy(text))
}

/// `the specified key doesn't exist (<key>)`
pub fn ra_no_key(key: &[u8]) -> String {
    format!("the specified key doesn't exist ({})", lossy(key))
}

/// `the specified key already exists (<key>)`
pub fn ra_key_exists(key: &[u8]) -> String {
    format!("the specified key already exists ({})", lossy(key))
}

/// `invalid zset score ([i]), bad raw bits`
pub fn ra_bad_score(i: usize) -> String {
    format!("invalid zset score ([{i}]), bad raw bits")
}

/// `wrong type (expect=T/E,got=T/E)` (Redis 3.2 type and encoding numbers)
pub fn ra_wrong_type(expect: (u8, u8), got: (u8, u8)) -> String {
    format!(
        "wrong type (expect={}/{},got={}/{})",
        expect.0, expect.1, got.0, got.1
    )
}

/// `invalid DB index (<text>)`
pub fn ra_invalid_db(text: &[u8]) -> String {
    format!("invalid DB index ({})", lossy(text))
}

/// A `stream` message with a part word we do not know (ours).
pub fn ra_stream_part(part: &[u8]) -> String {
    format!("unknown stream part ({})", lossy(part))
}

/// A `stream` message whose record `i` is malformed or does not fit the
/// stream (ours; the partial copy is dropped).
pub fn ra_bad_stream(part: &[u8], i: usize) -> String {
    format!("invalid stream {} ([{i}])", lossy(part))
}

/// An async batch reached a stream and the target refused the `stream`
/// probe as codis-server 3.2 (and our builds before streams) do.
pub fn async_no_streams(host: &str, port: u16, key: &[u8], answer: &[u8]) -> String {
    format!(
        "ERR interrupted: target {host}:{port} cannot take streams (it answered '{}'), stream '{}' not migrated",
        lossy(answer),
        lossy(key)
    )
}

/// A sync step holding a stream that the target refused as a server
/// without streams does (codis-server 3.2: `ERR Bad data format`).
pub fn mgrt_no_streams(key: &[u8], answer: &[u8]) -> String {
    format!(
        "ERR error on slotsrestore, migration failed: the target cannot take streams (it answered '{}'), stream '{}' not migrated",
        lossy(answer),
        lossy(key)
    )
}

/// `ERR unknown command '<name>', with args beginning with: '<a>' '<b>' `
/// (Redis truncates the name to 128 bytes and the quoted args to 128 in total).
pub fn unknown_command(argv: &[&[u8]]) -> String {
    protocol::command::unknown_command_text(argv)
}

/// `ERR unknown subcommand '<sub>'. Try <CMD> HELP.`
pub fn unknown_subcommand(container: &str, sub: &[u8]) -> String {
    format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        lossy(&sub[..sub.len().min(128)]),
        container.to_ascii_uppercase()
    )
}

/// `ERR wrong number of arguments for '<name>' command`
pub fn wrong_arity(name: &str) -> String {
    format!("ERR wrong number of arguments for '{name}' command")
}

/// Bytes shown in an error text (Redis prints raw bytes; we keep them lossless
/// where valid UTF-8 and replace the rest).
pub fn lossy(b: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// `ERR Syntax error in HELLO option '<opt>'`
pub fn hello_syntax(opt: &[u8]) -> String {
    format!("ERR Syntax error in HELLO option '{}'", lossy(opt))
}

/// `ERR Unknown client type '<t>'` (CLIENT LIST / CLIENT KILL TYPE).
pub fn unknown_client_type(t: &[u8]) -> String {
    format!("ERR Unknown client type '{}'", lossy(t))
}

/// `ERR No such user '<u>'` (CLIENT KILL USER).
pub fn no_such_user(u: &[u8]) -> String {
    format!("ERR No such user '{}'", lossy(u))
}

/// `ERR unknown subcommand or wrong number of arguments for '<sub>'. Try <CMD> HELP.`
/// (Redis' reply when a container parses its own subcommands, e.g. DEBUG).
pub fn subcommand_syntax(container: &str, sub: &[u8]) -> String {
    format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        lossy(&sub[..sub.len().min(128)]),
        container.to_ascii_uppercase()
    )
}

// Scripting (script/): Redis 7.0's texts.
pub const NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";
/// Other clients while an EVAL script is past the busy threshold.
pub const BUSY_SCRIPT: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
/// … while a function is (also SCRIPT KILL's answer then).
pub const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";
pub const BUSY_FUNCTION_NOT_EVAL: &str = BUSY_FUNCTION;
pub const BUSY_EVAL_NOT_FUNCTION: &str = BUSY_SCRIPT;
pub const NOTBUSY: &str = "NOTBUSY No scripts in execution right now.";
pub const UNKILLABLE_MASTER: &str = "UNKILLABLE The busy script was sent by a master instance in the context of replication and cannot be killed.";
pub const UNKILLABLE_WROTE: &str = "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.";
pub const SCRIPT_TOO_MANY_KEYS: &str = "ERR Number of keys can't be greater than number of args";
pub const SCRIPT_NEGATIVE_KEYS: &str = "ERR Number of keys can't be negative";
pub const SCRIPT_READONLY_REPLICA: &str =
    "READONLY Can not run script with write flag on readonly replica";
pub const SCRIPT_MISCONF: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Writable scripts are blocked. Use 'no-writes' flag for read only scripts.";
pub const SCRIPT_WRITE_FLAG_RO: &str =
    "ERR Can not execute a script with write flag using *_ro command.";
pub const SCRIPT_FLUSH_SYNTAX: &str = "ERR SCRIPT FLUSH only support SYNC|ASYNC option";
pub const SCRIPT_DEBUG_UNSUPPORTED: &str =
    "ERR SCRIPT DEBUG is not available: codis-server has no Lua debugger";
pub const FUNCTION_NOT_FOUND: &str = "ERR Function not found";
pub const FUNCTION_BAD_NUMKEYS: &str = "ERR Bad number of keys provided";
pub const FUNCTION_CODE_MISSING: &str = "ERR Function code is missing";
pub const FUNCTION_LIBRARY_NOT_FOUND: &str = "ERR Library not found";
pub const FUNCTION_FLUSH_SYNTAX: &str = "ERR FUNCTION FLUSH only supports SYNC|ASYNC option";
pub const FUNCTION_LIBRARY_NAME_MISSING: &str = "ERR library name argument was not given";
pub const FUNCTION_RESTORE_POLICY: &str =
    "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.";
pub const FUNCTION_NOT_A_FUNCTION: &str = "ERR given type is not a function";
pub const FUNCTION_RESTORE_FAILED: &str = "ERR failed loading the given functions payload";
// What `redis.call` raises inside a script (the script's error then adds
// `script: <sha>, on @user_script:<line>.`).
pub const SLOWLOG_COUNT: &str = "ERR count should be greater than or equal to -1";
pub const SORT_BY_ACL: &str = "ERR BY option of SORT denied due to insufficient ACL permissions.";
pub const SORT_GET_ACL: &str = "ERR GET option of SORT denied due to insufficient ACL permissions.";
pub const ACL_USERNAME_SPACES: &str = "ERR Usernames can't contain spaces or null characters";
pub const ACL_DEFAULT_UNDELETABLE: &str = "ERR The 'default' user cannot be removed";
pub const ACL_NO_FILE: &str = "ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.";
pub const ACL_SAVE_FAILED: &str = "ERR There was an error trying to save the ACLs. Please check the server logs for more information";
pub const ACL_GENPASS_BITS: &str = "ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096";
/// A command that may grow memory while memory stays over maxmemory.
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// `ERR No samples available for event '<event>'` (LATENCY GRAPH).
pub fn latency_no_samples(event: &[u8]) -> String {
    format!(
        "ERR No samples available for event '{}'",
        String::from_utf8_lossy(event)
    )
}
pub const SCRIPT_UNKNOWN_COMMAND: &str = "ERR Unknown Redis command called from script";
/// Ours: after a write, a script reached an undeclared key whose slot
/// (below the script's held slots) stayed taken (db::GROW_WAIT).
pub const SCRIPT_SLOT_BUSY: &str = "ERR Script attempted to access an undeclared key whose slot another client kept locked; declare every key the script uses in KEYS";
pub const SCRIPT_WRONG_ARITY: &str = "ERR Wrong number of args calling Redis command from script";
pub const SCRIPT_NOT_ALLOWED: &str = "ERR This Redis command is not allowed from script";
pub const SCRIPT_WRITE_IN_RO: &str = "ERR Write commands are not allowed from read-only scripts.";

// Streams (cmd/stream.rs): Redis 7.0's t_stream.c / blocked.c texts.
pub const STREAM_BAD_ID: &str = "ERR Invalid stream ID specified as stream command argument";
pub const XADD_ID_ZERO: &str = "ERR The ID specified in XADD must be greater than 0-0";
pub const XADD_EXHAUSTED: &str =
    "ERR The stream has exhausted the last possible ID, unable to add more items";
pub const XADD_ID_SMALL: &str =
    "ERR The ID specified in XADD is equal or smaller than the target stream top item";
pub const STREAM_TOO_LARGE: &str = "ERR Elements are too large to be stored";
pub const TRIM_BOTH: &str =
    "ERR syntax error, MAXLEN and MINID options at the same time are not compatible";
pub const TRIM_MAXLEN_NEG: &str = "ERR The MAXLEN argument must be >= 0.";
pub const TRIM_LIMIT_NEG: &str = "ERR The LIMIT argument must be >= 0.";
pub const TRIM_LIMIT_NO_STRATEGY: &str =
    "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy";
pub const XTRIM_NO_STRATEGY: &str =
    "ERR syntax error, XTRIM must be called with a trimming strategy";
pub const TRIM_LIMIT_NO_APPROX: &str =
    "ERR syntax error, LIMIT cannot be used without the special ~ option";
pub const RANGE_BAD_START: &str = "ERR invalid start ID for the interval";
pub const RANGE_BAD_END: &str = "ERR invalid end ID for the interval";
pub const XREAD_UNBALANCED: &str =
    "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.";
pub const XREAD_GROUP_ONLY: &str =
    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.";
pub const XREAD_NOACK_ONLY: &str =
    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.";
pub const XREADGROUP_NO_GROUP: &str = "ERR Missing GROUP option for XREADGROUP";
pub const XREADGROUP_DOLLAR: &str = "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.";
pub const XREAD_GT: &str = "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.";
pub const XREAD_TIMEOUT_NOT_INT: &str = "ERR timeout is not an integer or out of range";
pub const XREAD_TIMEOUT_RANGE: &str = "ERR timeout is out of range";
pub const ENTRIESREAD_BAD: &str = "ERR value for ENTRIESREAD must be positive or -1";
pub const XGROUP_NO_KEY: &str = "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.";
pub const BUSYGROUP: &str = "BUSYGROUP Consumer Group name already exists";
pub const XSETID_ADDED_NEG: &str = "ERR entries_added must be positive";
pub const XSETID_BELOW_MAXDEL: &str =
    "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id";
pub const XSETID_BELOW_TOP: &str =
    "ERR The ID specified in XSETID is smaller than the target stream top item";
pub const XSETID_ADDED_SMALL: &str =
    "ERR The entries_added specified in XSETID is smaller than the target stream length";
pub const XCLAIM_MINIDLE: &str = "ERR Invalid min-idle-time argument for XCLAIM";
pub const XCLAIM_IDLE: &str = "ERR Invalid IDLE option argument for XCLAIM";
pub const XCLAIM_TIME: &str = "ERR Invalid TIME option argument for XCLAIM";
pub const XCLAIM_RETRY: &str = "ERR Invalid RETRYCOUNT option argument for XCLAIM";
pub const XAUTOCLAIM_MINIDLE: &str = "ERR Invalid min-idle-time argument for XAUTOCLAIM";
pub const XAUTOCLAIM_COUNT: &str = "ERR COUNT must be > 0";
pub const BLOCKED_GROUP_GONE: &str =
    "NOGROUP the consumer group this client was blocked on no longer exists";
pub const BLOCKED_STREAM_GONE: &str = "UNBLOCKED the stream key no longer exists";

/// `ERR <cmd> command is not allowed with BLOCK option from scripts`
pub fn xread_block_in_script(cmd: &[u8]) -> String {
    format!(
        "ERR {} command is not allowed with BLOCK option from scripts",
        lossy(cmd)
    )
}

/// XREADGROUP's missing key or group.
pub fn nogroup_xreadgroup(key: &[u8], group: &[u8]) -> String {
    format!(
        "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
        lossy(key),
        lossy(group)
    )
}

/// XGROUP / XINFO CONSUMERS' missing group.
pub fn nogroup_for_key(group: &[u8], key: &[u8]) -> String {
    format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        lossy(group),
        lossy(key)
    )
}

/// XPENDING / XCLAIM / XAUTOCLAIM's missing key or group.
pub fn nogroup(key: &[u8], group: &[u8]) -> String {
    format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        lossy(key),
        lossy(group)
    )
}

/// `ERR Unrecognized XCLAIM option '<opt>'`
pub fn xclaim_bad_option(opt: &[u8]) -> String {
    format!("ERR Unrecognized XCLAIM option '{}'", lossy(opt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_command_text() {
        assert_eq!(
            unknown_command(&[b"foo", b"a", b"b"]),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            unknown_command(&[b"foo"]),
            "ERR unknown command 'foo', with args beginning with: "
        );
        let long = vec![b'x'; 200];
        let s = unknown_command(&[b"foo", &long, b"aaaaaa"]);
        assert_eq!(
            s,
            format!(
                "ERR unknown command 'foo', with args beginning with: '{}' ",
                "x".repeat(128)
            )
        );
    }
}
