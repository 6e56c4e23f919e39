//! MULTI/EXEC/DISCARD/WATCH/UNWATCH through the proxy (beyond Codis, which
//! refuses them), for transactions whose keys all hash to one slot.
//!
//! The session queues the commands itself (answering `+QUEUED`, or the
//! error that makes EXEC answer `EXECABORT`: an unknown command, a wrong
//! arity, a key of another slot, a command the proxy cannot run in a
//! transaction). At EXEC the whole transaction goes to the slot's owner on
//! a connection of its own, pinned for it, as `MULTI … EXEC` in one write;
//! the owner's EXEC reply is the client's. WATCH opens that connection
//! first (on the watched keys' slot) and sends WATCH there, so the owner
//! itself tracks the keys. Both run like blocking commands: only after every
//! earlier request of the session is answered, and nothing more is read
//! from the client until they are.
//!
//! Slots that move: the transaction holds the slot's in-flight guard while
//! it runs, so a switch waits for it. While the slot migrates, the keys'
//! tag groups are first moved to the new owner (SLOTSMGRTTAGONE on the
//! source), so the transaction runs whole on the new owner. When the slot
//! changed owner between WATCH and EXEC (or between two WATCHes), or a
//! WATCH failed, the watched keys were not all watched by the owner: EXEC
//! answers a null reply (the transaction did not run), as when a watched
//! key changed.

use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::backend::{Inbox, encode, mgrt_tag_one};
use crate::router::{Chan, RouteError, Router};

/// The connection pinned for a session's WATCH and transaction.
pub struct Pin {
    /// The slot it serves.
    pub slot: usize,
    /// The slot's servers when it was opened (backend, migrate source).
    owner: (String, Option<String>),
    stream: TcpStream,
    buf: Vec<u8>,
}

/// A session's WATCH state, handed to its jobs: the pinned connection,
/// and whether an earlier WATCH of this transaction was lost (the slot
/// moved between two WATCHes, or a WATCH failed): then EXEC does not run.
#[derive(Default)]
pub struct Watching {
    pub pin: Option<Pin>,
    pub broken: bool,
}

/// Shared between the session and its jobs.
pub type Shared = Arc<tokio::sync::Mutex<Watching>>;

/// What a job does.
pub enum Kind {
    /// WATCH: argv as given, keys (all of `slot`).
    Watch,
    /// EXEC of the queued commands; `slot` None: no keyed command (any
    /// server runs it).
    Exec { cmds: Vec<Vec<Vec<u8>>> },
}

/// One job: run by [`run`] once every earlier request is answered.
pub struct Job {
    pub kind: Kind,
    pub argv: Vec<Vec<u8>>,
    pub keys: Vec<Vec<u8>>,
    pub slot: Option<usize>,
    pub ch: Chan,
    pub seed: u64,
    pub pin: Shared,
}

/// Runs the job and delivers its reply under `seq`.
pub async fn run(router: Arc<Router>, job: Job, inbox: Arc<Inbox>, seq: u64) {
    let r = match job.kind {
        Kind::Watch => watch(&router, &job).await,
        Kind::Exec { ref cmds } => exec(&router, &job, cmds).await,
    };
    inbox.deliver(|d| match r {
        Ok(frame) => d.reply(seq, &frame),
        Err(text) => d.reply(seq, &crate::errors::line(&text)),
    });
}

fn route_err(e: RouteError) -> String {
    match e {
        RouteError::NotReady => crate::errors::handle_request(crate::errors::NOT_READY),
        RouteError::LockedTimeout => crate::errors::handle_request(crate::errors::LOCKED),
    }
}

/// A slot's servers as routed: (backend, migrate source).
fn owner_of(r: &crate::router::Routed) -> (String, Option<String>) {
    (
        r.backend.addr.clone(),
        r.migrate.as_ref().map(|m| m.addr.clone()),
    )
}

/// Moves the keys' tag groups off a migration source (sync), so they are
/// all on the new owner.
async fn pull_keys(r: &crate::router::Routed, job: &Job) -> Result<(), String> {
    let Some(from) = r.migrate.as_ref() else {
        return Ok(());
    };
    let src = from
        .conn(job.ch, job.seed)
        .cloned()
        .ok_or(crate::errors::RESET_TEXT)?;
    let (host, port) = r
        .backend
        .addr
        .rsplit_once(':')
        .unwrap_or((&r.backend.addr, "0"));
    for key in &job.keys {
        match src.call(&mgrt_tag_one(host, port, key)).await {
            Ok(rep) if rep.starts_with(b":") => {}
            Ok(rep) => return Err(crate::errors::bad_slotsmgrt_resp(&rep)),
            Err(e) => return Err(crate::errors::handle_response(e.text())),
        }
    }
    Ok(())
}

async fn open(router: &Router, addr: &str, ch: Chan) -> Result<TcpStream, String> {
    crate::backend::connect(addr, ch, &router.opts)
        .await
        .map_err(|e| {
            crate::log::warn(&format!("backend {addr}: transaction connection: {e}"));
            crate::errors::RESET_TEXT.to_string()
        })
}

/// Writes `req` and reads `n` replies; the last one is returned.
async fn roundtrip(p: &mut Pin, req: &[u8], n: usize) -> Result<Vec<Vec<u8>>, String> {
    p.stream
        .write_all(req)
        .await
        .map_err(|_| crate::errors::RESET_TEXT.to_string())?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(crate::blocking::read_frame(&mut p.stream, &mut p.buf).await?);
    }
    Ok(out)
}

async fn watch(router: &Arc<Router>, job: &Job) -> Result<Vec<u8>, String> {
    let slot = job.slot.unwrap_or(0);
    let mut state = job.pin.lock().await;
    let routed = router.route(slot).await.map_err(route_err)?;
    if state
        .pin
        .as_ref()
        .is_some_and(|p| p.slot != slot || p.owner != owner_of(&routed))
    {
        // The earlier WATCH was on another server: its keys can no longer
        // be checked at EXEC, which will not run.
        state.pin = None;
        state.broken = true;
    }
    pull_keys(&routed, job).await?;
    if state.pin.is_none() {
        let stream = match open(router, &routed.backend.addr, job.ch).await {
            Ok(s) => s,
            Err(e) => {
                state.broken = true;
                return Err(e);
            }
        };
        state.pin = Some(Pin {
            slot,
            owner: owner_of(&routed),
            stream,
            buf: Vec::new(),
        });
    }
    let p = state.pin.as_mut().expect("pinned above");
    let mut req = Vec::new();
    let args: Vec<&[u8]> = job.argv.iter().map(Vec::as_slice).collect();
    encode(&mut req, &args);
    let r = roundtrip(p, &req, 1).await;
    drop(routed);
    match r {
        Ok(mut v) => Ok(v.pop().unwrap_or_default()),
        Err(e) => {
            state.pin = None;
            state.broken = true;
            Err(e)
        }
    }
}

async fn exec(router: &Arc<Router>, job: &Job, cmds: &[Vec<Vec<u8>>]) -> Result<Vec<u8>, String> {
    let mut state = job.pin.lock().await;
    let watched = state.pin.take();
    let broken = std::mem::take(&mut state.broken);
    let slot = job.slot.or(watched.as_ref().map(|p| p.slot)).unwrap_or(0);
    let null = || {
        if job.ch.resp3 {
            b"_\r\n".to_vec()
        } else {
            b"*-1\r\n".to_vec()
        }
    };
    if broken {
        // A WATCH of this transaction was lost: it does not run.
        return Ok(null());
    }
    let routed = router.route(slot).await.map_err(route_err)?;
    let mut pin = match watched {
        Some(p) if p.owner != owner_of(&routed) || p.slot != slot => {
            // The slot moved since WATCH: the transaction does not run.
            return Ok(null());
        }
        Some(p) => {
            pull_keys(&routed, job).await?;
            p
        }
        None => {
            pull_keys(&routed, job).await?;
            Pin {
                slot,
                owner: owner_of(&routed),
                stream: open(router, &routed.backend.addr, job.ch).await?,
                buf: Vec::new(),
            }
        }
    };
    let mut req = Vec::new();
    encode(&mut req, &[b"MULTI"]);
    for c in cmds {
        let args: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
        encode(&mut req, &args);
    }
    encode(&mut req, &[b"EXEC"]);
    let mut replies = roundtrip(&mut pin, &req, cmds.len() + 2).await?;
    drop(routed);
    // The pinned connection ends with the transaction (EXEC unwatched
    // everything on it).
    Ok(replies.pop().unwrap_or_default())
}
