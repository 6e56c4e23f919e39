//! RESP: the request parser ([`RequestParser`]), the reply writer ([`Reply`])
//! and the request encoder ([`request`]).
//!
//! Mirrors Redis 7.0's `processMultibulkBuffer`/`processInlineBuffer` limits and
//! protocol error texts, and its RESP2/RESP3 reply shapes (`HELLO 3`).

mod parser;
pub mod request;
mod split;
mod writer;

pub use parser::{Limits, ParseError, Parsed, RequestParser};
pub use split::{is_c_space, repr, split_args};
pub use writer::Reply;
