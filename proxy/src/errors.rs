//! Every reply text the proxy writes itself: Codis 3.2's proxy texts
//! (codis.md §3.3, §3.4) and, for the commands it answers beyond Codis
//! (HELLO, CLIENT, COMMAND, CONFIG, SCAN, blocking and same-slot
//! commands), redis-server 7.0.15's.

pub const BAD_LEN: &[u8] = b"-ERR handle request, bad command length, too short or too long\r\n";
pub const NOT_READY: &str = "slot is not ready, may be offline";
pub const LOCKED: &str = "slot is locked, timed out waiting for it to be unlocked";
pub const NOAUTH: &[u8] = b"-NOAUTH Authentication required\r\n";
pub const RESET: &[u8] = b"-ERR handle response, backend conn reset\r\n";
/// The transport failure a session wraps as [`RESET`] (`ERR handle
/// response, ...`).
pub const CONN_RESET: &str = "backend conn reset";
/// [`RESET`]'s text (without `-` and CRLF).
pub const RESET_TEXT: &str = "ERR handle response, backend conn reset";
pub const OK: &[u8] = b"+OK\r\n";
pub const EXECABORT: &[u8] = b"-EXECABORT Transaction discarded because of previous errors.\r\n";
pub const CROSSSLOT: &[u8] = b"-CROSSSLOT Keys in request don't hash to the same slot\r\n";

pub const NOPROTO: &str = "NOPROTO unsupported protocol version";
pub const HELLO_PROTO_NOT_INT: &str = "ERR Protocol version is not an integer or out of range";
pub const HELLO_NOAUTH: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";
/// `AUTH user pass` passed through while every lane is taken (ours).
pub const TOO_MANY_USERS: &str =
    "ERR proxy: too many distinct users authenticated through this proxy";
/// `AUTH user pass` passed through with no server in the slot table (ours).
pub const NO_SERVER_FOR_AUTH: &str = "ERR proxy: no server to check the credentials with";
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
pub const NO_PASSWORD: &str = "ERR Client sent AUTH, but no password is set";
pub const INVALID_PASSWORD: &str = "ERR invalid password";
pub const CLIENT_NAME_INVALID: &str =
    "ERR Client names cannot contain spaces, newlines or special characters.";
pub const SYNTAX: &str = "ERR syntax error";
pub const INVALID_CURSOR: &str = "ERR invalid cursor";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const GETKEYS_INVALID_COMMAND: &str = "ERR Invalid command specified";
pub const GETKEYS_NO_KEYS: &str = "ERR The command has no key arguments";
pub const GETKEYS_BAD_ARITY: &str = "ERR Invalid number of arguments specified for command";
pub const GETKEYS_BAD_ARGS: &str = "ERR Invalid arguments specified for command";

/// `-<text>\r\n`
pub fn line(text: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(text.len() + 3);
    v.push(b'-');
    v.extend_from_slice(text.as_bytes());
    v.extend_from_slice(b"\r\n");
    v
}

/// The arity error, `name` as given: Redis' lower case (`get`,
/// `client|setname`) for the commands the proxy answers as Redis does,
/// Codis' upper case (`MGET`, `AUTH`) where it keeps Codis' texts.
pub fn arity(name: &str) -> Vec<u8> {
    line(&format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// `ERR unknown subcommand 'x'. Try CONTAINER HELP.`
pub fn unknown_subcommand(container: &str, sub: &[u8]) -> Vec<u8> {
    line(&format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        String::from_utf8_lossy(&sub[..sub.len().min(128)]),
        container
    ))
}

/// `ERR Syntax error in HELLO option '<opt>'`
pub fn hello_syntax(opt: &[u8]) -> Vec<u8> {
    line(&format!(
        "ERR Syntax error in HELLO option '{}'",
        String::from_utf8_lossy(opt)
    ))
}

/// Codis' wrapping of a request-side failure: `ERR handle request, <why>`.
pub fn handle_request(why: &str) -> String {
    format!("ERR handle request, {why}")
}

/// Codis' wrapping of a response-side failure: `ERR handle response, <why>`.
pub fn handle_response(why: &str) -> String {
    format!("ERR handle response, {why}")
}

/// A migration source's unexpected SLOTSMGRTTAGONE reply (Codis').
pub fn bad_slotsmgrt_resp(reply: &[u8]) -> String {
    handle_request(&format!(
        "bad slotsmgrt resp: {}",
        String::from_utf8_lossy(reply).trim_end()
    ))
}

/// SELECT with a DB index that is not a number (Codis').
pub const INVALID_DB: &str = "ERR invalid DB index";

/// SELECT with a DB index out of range (Codis').
pub fn invalid_db_range(n: usize) -> String {
    format!("ERR invalid DB index, only accept DB [0,{n})")
}

/// PING / INFO / SLOTSINFO naming a server the proxy does not route to
/// (Codis').
pub fn backend_not_found(addr: &[u8]) -> String {
    format!(
        "ERR backend server '{}' not found",
        String::from_utf8_lossy(addr)
    )
}

/// A slot number out of range (Codis' `parse slotnum`).
pub fn slotnum_out_of_range(s: &str) -> String {
    format!("ERR parse slotnum '{s}' failed, out of range")
}

/// A slot number that is not a number (Codis', with Go's strconv text).
pub fn slotnum_invalid(s: &str) -> String {
    format!("ERR parse slotnum '{s}' failed, strconv.Atoi: parsing \"{s}\": invalid syntax")
}

/// CLIENT SETINFO with an unknown attribute (redis-server's).
pub fn unrecognized_option(opt: &[u8]) -> Vec<u8> {
    line(&format!(
        "ERR Unrecognized option '{}'",
        String::from_utf8_lossy(opt)
    ))
}

/// CLIENT SETINFO with a value holding spaces or specials (redis-server's).
pub fn setinfo_invalid(attr: &[u8]) -> Vec<u8> {
    line(&format!(
        "ERR {} cannot contain spaces, newlines or special characters.",
        String::from_utf8_lossy(attr).to_ascii_lowercase()
    ))
}

/// Codis' refusal: `ERR handle request, command 'X' is not allowed`.
pub fn not_allowed(upper: &str) -> String {
    format!("command '{upper}' is not allowed")
}

/// Admin API (HTTP status 800 causes): a wrong xauth (Codis' text).
pub const ADMIN_BAD_XAUTH: &str = "invalid xauth, please check product_name & product_auth";

/// Admin API: a state-changing call from a non-loopback caller while
/// `product_auth` is empty (anyone could compute that xauth).
pub const ADMIN_REMOTE_REFUSED: &str = "refused: product_auth is empty, so state-changing \
     admin calls are accepted from loopback only; set product_auth (the same as the \
     dashboard's) to manage this proxy from another host";

/// Admin API: `PUT /api/proxy/loglevel/<xauth>/<level>` with a bad level.
pub fn admin_bad_loglevel(level: &str) -> String {
    format!("invalid loglevel = {level}")
}

/// Sent to a client that connects before a slot table is loaded (Codis').
pub const NOT_ONLINE: &[u8] = b"-ERR router is not online\r\n";

/// Sent to a client over `proxy_max_clients` (Codis').
pub const MAX_CLIENTS: &[u8] = b"-ERR max number of clients reached\r\n";

/// The reason given while no slot table has been loaded (also logged at
/// start-up).
pub const OFFLINE_REASON: &str = "no slot table yet: start with --fillslots FILE, \
     or PUT /api/proxy/fillslots/<xauth> and then /api/proxy/start/<xauth>; \
     until then clients get `ERR router is not online`";

/// `online_reason` while the proxy shuts down.
pub const CLOSED_REASON: &str = "closed: the proxy is shutting down";

// Transactions (redis-server 7.0.15's texts; see `transaction.rs`).
pub const MULTI_NESTED: &str = "ERR MULTI calls can not be nested";
pub const EXEC_WITHOUT_MULTI: &str = "ERR EXEC without MULTI";
pub const DISCARD_WITHOUT_MULTI: &str = "ERR DISCARD without MULTI";
pub const WATCH_IN_MULTI: &str = "ERR WATCH inside MULTI is not allowed";

/// A command the proxy cannot run inside a transaction (wrapped as
/// `ERR handle request, ...`).
pub fn not_in_multi(name: &str) -> String {
    format!("command '{name}' is not allowed inside MULTI through the proxy")
}

/// `ERR wrong number of arguments for '<name>' command`, as text.
pub fn wrong_arity(name: &str) -> String {
    format!("ERR wrong number of arguments for '{name}' command")
}

/// `ERR unknown command '<name>', with args beginning with: '<a>' '<b>' `
/// (the name cut at 128 bytes, the quoted arguments at 128 in all).
pub fn unknown_command(argv: &[&[u8]]) -> String {
    protocol::command::unknown_command_text(argv)
}

// Pub/sub (see `pubsub.rs`).
pub const SUB_OTHER_SERVER: &str =
    "channel is served by another server than this connection's subscriptions";

/// A command a RESP3 client sent while subscribed through the proxy
/// (wrapped as `ERR handle request, ...`).
pub fn not_while_subscribed(name: &str) -> String {
    format!(
        "command '{name}' is not allowed while subscribed through the proxy: only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET"
    )
}
