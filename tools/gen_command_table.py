#!/usr/bin/env python3
"""Generate protocol/src/command/generated.rs from a live redis-server 7.0.15.

The command metadata (arity, flags, key positions, ACL categories, tips, key
specs, subcommands) is interface data: it is read from the reference server's
`COMMAND INFO` so our table cannot drift from it (the meta-test in
tests/tests/meta_command_table.rs re-checks it on every CI run). Codis' own
SLOTS* commands are appended from codis.md section 2.2, translated to Redis 7
flag words. Proxy policies follow codis.md section 3.3.

usage: tools/gen_command_table.py [port]   (a redis-server must be listening)
"""
import socket, sys

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 6379

COMMANDS = """
ping echo select quit auth hello reset client
info dbsize flushdb flushall swapdb time command config shutdown debug monitor lastsave
save bgsave bgrewriteaof psync sync replconf role replicaof slaveof wait failover
del unlink exists type touch expire pexpire expireat pexpireat ttl pttl expiretime pexpiretime
persist rename renamenx copy move keys scan randomkey object
get set setnx setex psetex getset getdel getex mget mset msetnx incr decr incrby decrby
incrbyfloat append strlen getrange setrange substr lcs
lpush rpush lpushx rpushx lpop rpop llen lrange lindex lset linsert lrem ltrim lpos lmove rpoplpush
lmpop blpop brpop blmove brpoplpush blmpop
hset hsetnx hget hmget hmset hdel hlen hstrlen hexists hkeys hvals hgetall hincrby hincrbyfloat
hrandfield hscan
sadd srem scard sismember smismember smembers spop srandmember smove sinter sintercard sunion sdiff
sinterstore sunionstore sdiffstore sscan
zadd zincrby zrem zcard zcount zlexcount zscore zmscore zrank zrevrank zrange zrangestore
zrangebyscore zrevrangebyscore zrangebylex zrevrangebylex zrevrange zremrangebyrank zremrangebyscore
zremrangebylex zpopmin zpopmax zmpop bzpopmin bzpopmax bzmpop zrandmember zunion zinter zdiff
zunionstore zinterstore zdiffstore zintercard zscan
setbit getbit bitcount bitpos bitop bitfield bitfield_ro pfadd pfcount pfmerge sort sort_ro
geoadd geodist geohash geopos georadius georadius_ro georadiusbymember georadiusbymember_ro
geosearch geosearchstore
xadd xrange xrevrange xlen xdel xtrim xread xreadgroup xgroup xack xpending xclaim xautoclaim
xinfo xsetid
dump restore
multi exec discard watch unwatch
eval evalsha eval_ro evalsha_ro script fcall fcall_ro function
subscribe unsubscribe psubscribe punsubscribe publish ssubscribe sunsubscribe spublish pubsub
slowlog latency memory acl
""".split()

# codis.md 3.3: what codis-proxy does with a command.
# Beyond Codis, our proxy runs same-slot multi-key commands (BITOP, MSETNX,
# RENAME, RENAMENX; CROSSSLOT otherwise) and blocking ones (on a dedicated
# backend connection), and answers HELLO, RESET, CLIENT, COMMAND, ECHO,
# CONFIG, SCAN, KEYS, RANDOMKEY, FLUSHDB and FLUSHALL itself (LOCAL), and
# runs same-slot transactions (MULTI/EXEC/DISCARD/WATCH/UNWATCH, LOCAL: the
# proxy queues them and runs them on a pinned connection) and pub/sub (LOCAL:
# routed to the pub/sub server or the shard channel's owner, subscriptions
# relayed on a connection of their own).
NOT_ALLOW = set("""asking bgrewriteaof bgsave cluster
debug lastsave latency migrate monitor move
object psync readonly readwrite replconf
restore save shutdown slaveof slotscheck slotsdel slotsmgrtone slotsmgrtslot
slotsmgrttagone slotsmgrttagslot slowlog sync wait
replicaof failover host: post
acl""".split())
MASTER_ONLY = set("hscan sscan zscan slotsinfo slotsscan eval evalsha fcall".split())
# Answered by the proxy itself (beyond Codis: DBSIZE summed over the
# groups, TIME from the proxy's clock).
LOCAL = set("""quit auth select ping info slotsinfo slotsscan slotsmapping dbsize time
hello reset client command echo config scan keys randomkey flushdb flushall
multi exec discard watch unwatch script function
subscribe unsubscribe psubscribe punsubscribe publish ssubscribe sunsubscribe spublish pubsub""".split())
SPLIT = set("mget mset del exists".split())

# codis.md 2.2: name, arity, Redis 3.2 flag letters. Arity 0 means "no arity
# check at all" (Codis 3.2's table); the letters become Redis 7 flag words.
CODIS_32 = """
slotsinfo -1 rF
slotshashkey -1 rF
slotsscan -3 rR
slotsdel -2 w
slotsmgrtslot 5 wM
slotsmgrttagslot 5 wM
slotsmgrtone 5 wM
slotsmgrttagone 5 wM
slotscheck 0 r
slotsrestore -4 wmM
slotsmgrtslot-async 8 wsM
slotsmgrttagslot-async 8 wsM
slotsmgrtone-async -7 wsM
slotsmgrttagone-async -7 wsM
slotsmgrtone-async-dump -4 rm
slotsmgrttagone-async-dump -4 rm
slotsmgrt-async-fence 0 rsM
slotsmgrt-async-cancel 0 F
slotsmgrt-async-status 0 F
slotsmgrt-exec-wrapper -3 wmM
slotsrestore-async -2 wmM
slotsrestore-async-auth -2 sltFM
slotsrestore-async-select 2 lFM
slotsrestore-async-ack 3 wM
"""
# Redis 7 has no "random" flag (R); it became a tip, which these entries omit.
# M (no_multi, ours): commands that answer after network work (migration) or
# belong to another server's migration stream are refused inside MULTI.
LETTERS = {"w": "write", "r": "readonly", "m": "denyoom", "F": "fast", "R": None,
           "s": "noscript", "l": "loading", "t": "stale",
           "M": "no_multi"}


def codis_entry(line):
    name, arity, letters = line.split()
    fl = [LETTERS[c] for c in letters if LETTERS[c]]
    if name == "slotsrestore-async-auth":
        fl.append("no_auth")
    acl = (["@write"] if "write" in fl else ["@read"] if "readonly" in fl else []) + \
        (["@fast"] if "fast" in fl else ["@slow"]) + ["@codis"]
    # Moving, restoring or dropping whole slots is an operator's job.
    if name not in ("slotsinfo", "slotshashkey", "slotsscan", "slotsmgrt-async-status",
                    "slotsmgrt-exec-wrapper"):
        acl += ["@admin", "@dangerous"]
    first, last, step = (1, 1, 1) if name == "slotsmgrt-exec-wrapper" else (0, 0, 0)
    return (name, int(arity), fl, first, last, step, acl)


CODIS = [codis_entry(l) for l in CODIS_32.strip().splitlines()]


def send(s, *args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    s.sendall(out)


class Reader:
    def __init__(self, s):
        self.f = s.makefile("rb")

    def read(self):
        line = self.f.readline()[:-2]
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            d = self.f.read(n + 2)[:-2]
            return d.decode()
        if t == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self.read() for _ in range(n)]
        raise RuntimeError("bad reply %r" % line)


def rs(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def strs(xs):
    return "&[" + ", ".join(rs(x) for x in xs) + "]"


def flag_expr(flags):
    if not flags:
        return "0"
    return " | ".join("flags::" + f.upper().replace("-", "_") for f in flags)


def kv(lst):
    return {lst[i]: lst[i + 1] for i in range(0, len(lst), 2)}


def keyspec(ks):
    d = kv(ks)
    bs = kv(d["begin_search"])
    fk = kv(d["find_keys"])
    if bs["type"] == "index":
        b = "BeginSearch::Index(%d)" % kv(bs["spec"])["index"]
    elif bs["type"] == "keyword":
        sp = kv(bs["spec"])
        b = "BeginSearch::Keyword(%s, %d)" % (rs(sp["keyword"]), sp["startfrom"])
    else:
        b = "BeginSearch::Unknown"
    if fk["type"] == "range":
        sp = kv(fk["spec"])
        f = "FindKeys::Range { last: %d, step: %d, limit: %d }" % (sp["lastkey"], sp["keystep"], sp["limit"])
    elif fk["type"] == "keynum":
        sp = kv(fk["spec"])
        f = "FindKeys::Keynum { idx: %d, first: %d, step: %d }" % (sp["keynumidx"], sp["firstkey"], sp["keystep"])
    else:
        f = "FindKeys::Unknown"
    notes = d.get("notes") or ""
    return "KeySpec { notes: %s, flags: %s, begin: %s, find: %s }" % (rs(notes), strs(d["flags"]), b, f)


def policy(name):
    base = name.split("|")[0]
    if base in NOT_ALLOW:
        return "ProxyPolicy::NotAllow"
    if base in SPLIT:
        return "ProxyPolicy::Split"
    if base in LOCAL:
        return "ProxyPolicy::Local"
    if base in MASTER_ONLY:
        return "ProxyPolicy::MasterOnly"
    return None


def previous_order():
    """Subcommand names in the order the current generated.rs lists them:
    COMMAND INFO answers subcommands in hash order, so keeping the old order
    (new ones after, sorted) keeps regenerations free of noisy diffs."""
    import os, re
    path = os.path.join(os.path.dirname(__file__), "..", "protocol", "src", "command", "generated.rs")
    try:
        text = open(path).read()
    except OSError:
        return {}
    names = re.findall(r'name: "([^"|]+\|[^"]+)"', text)
    return {n: i for i, n in enumerate(names)}


PREVIOUS = previous_order()


def entry(info, docs, ident, indent="    "):
    name, arity, fl, first, last, step, acl, tips, keyspecs, subs = info
    subs = sorted(subs, key=lambda s: (PREVIOUS.get(s[0], len(PREVIOUS)), s[0]))
    group = docs.get(name, {}).get("group", "connection" if name == "client|setinfo" else "server")
    since = docs.get(name, {}).get("since", "7.2.0" if name == "client|setinfo" else "1.0.0")
    pol = policy(name) or ("ProxyPolicy::Write" if "write" in fl else "ProxyPolicy::Read")
    sub_s = "&[]"
    if subs:
        sub_s = "&[\n" + "".join(entry(s, docs, None, indent + "        ") for s in subs) + indent + "    ]"
    return (f"{indent}CommandSpec {{ name: {rs(name)}, arity: {arity}, flags: {flag_expr(fl)}, "
            f"first_key: {first}, last_key: {last}, step: {step},\n{indent}    acl: {strs(acl)}, tips: {strs(tips)},\n"
            f"{indent}    key_specs: &[{', '.join(keyspec(k) for k in keyspecs)}],\n"
            f"{indent}    group: {rs(group)}, since: {rs(since)}, proxy: {pol}, subcommands: {sub_s} }},\n")


def main():
    s = socket.create_connection(("127.0.0.1", PORT))
    r = Reader(s)
    send(s, "COMMAND", "INFO", *COMMANDS)
    infos = r.read()
    # CLIENT SETINFO arrived in Redis 7.2; clients (the `redis` crate, redis-py,
    # go-redis) send it on connect, so we accept it as 7.2 does.
    for info in infos:
        if info and info[0] == "client" and not any(s[0] == "client|setinfo" for s in info[9]):
            info[9].append(["client|setinfo", -4, ["noscript", "loading", "stale"], 0, 0, 0,
                            ["@slow", "@connection"], ["request_policy:all_nodes", "response_policy:all_succeeded"], [], []])
    send(s, "COMMAND", "DOCS", *COMMANDS)
    raw = r.read()
    docs = {}
    for i in range(0, len(raw), 2):
        d = kv(raw[i + 1])
        docs[raw[i]] = d
        for sub, sd in kv(d.get("subcommands", [])).items():
            docs[sub] = kv(sd)
    out = ["// @generated by tools/gen_command_table.py from redis-server 7.0.15 COMMAND INFO/DOCS\n",
           "// plus Codis' SLOTS* commands (codis.md 2.2). Do not edit by hand; rerun the tool.\n",
           "use super::*;\n\n",
           "/// Identifies a top-level command; `COMMANDS[id as usize]` is its spec.\n",
           "#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]\n#[repr(u16)]\npub enum CmdId {\n"]
    names = []
    for info in infos:
        if info is None:
            raise SystemExit("missing command")
        names.append(info[0])
    names += [c[0] for c in CODIS]
    def ident(n):
        return "".join(p.capitalize() for p in n.replace("-", "_").split("_"))
    for n in names:
        out.append(f"    {ident(n)},\n")
    out.append("}\n\n/// Every command we serve, in `CmdId` order.\npub static COMMANDS: &[CommandSpec] = &[\n")
    for info in infos:
        out.append(entry(info, docs, None))
    for (name, arity, fl, first, last, step, acl) in CODIS:
        out.append(f"    CommandSpec {{ name: {rs(name)}, arity: {arity}, flags: {flag_expr(fl)}, "
                   f"first_key: {first}, last_key: {last}, step: {step},\n        acl: {strs(acl)}, tips: &[],\n"
                   f"        key_specs: &[],\n        group: \"codis\", since: \"3.2.0\", proxy: {policy(name) or ('ProxyPolicy::Write' if 'write' in fl else 'ProxyPolicy::Read')}, subcommands: &[] }},\n")
    out.append("];\n\n/// Case-insensitive lookup of a top-level command name (already lower-cased).\n")
    out.append("pub(crate) fn lookup_lower(name: &[u8]) -> Option<CmdId> {\n    Some(match name {\n")
    for n in names:
        out.append(f"        b{rs(n)} => CmdId::{ident(n)},\n")
    out.append("        _ => return None,\n    })\n}\n")
    out.append("\n/// Every name codis-proxy refuses (`ProxyPolicy::NotAllow`), also those of\n"
               "/// commands this table does not have (yet), upper-cased.\n"
               "pub static PROXY_NOT_ALLOWED: &[&str] = &[\n")
    for n in sorted(NOT_ALLOW):
        out.append(f"    {rs(n.upper())},\n")
    out.append("];\n")
    sys.stdout.write("".join(out))


main()
