//! Wire formats shared by `codis-server`, `codis-proxy` and the tests.
//!
//! * [`resp`]: the RESP2 request parser (multibulk + inline, Redis 7.0 limits and
//!   protocol error texts) and the RESP2/RESP3 reply writer.
//! * [`command`]: the one declarative command table (arity, flags, key positions,
//!   ACL categories, proxy policy) from which arity errors, `COMMAND`, key
//!   extraction and stats labels derive.
//! * [`slot`]: Codis hash-tag extraction and `crc32 % 1024` (codis.md §1).
//! * [`number`]: Redis-exact integer/double parsing and formatting.
//! * [`glob`]: Redis' byte-based `stringmatchlen` glob semantics.
//! * [`rdb`]: DUMP/RESTORE payloads (RDB value encodings, version, CRC-64).
//!
//! Nothing here knows about sockets or tokio.
#![deny(unsafe_code)]

pub mod civil;
pub mod command;
pub mod glob;
pub mod number;
pub mod rdb;
pub mod resp;
pub mod slot;
