//! `codis-ctl`: the control tool (see `cluster::ctl`).

fn main() {
    restore_sigpipe();
    std::process::exit(cluster::ctl::main(std::env::args().skip(1).collect()));
}

/// Output piped into `head` and the like ends the tool quietly, as other
/// command-line tools do, instead of a panic on the broken pipe (Rust
/// ignores SIGPIPE by default).
#[allow(unsafe_code)]
fn restore_sigpipe() {
    // SAFETY: resets one signal's disposition before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
