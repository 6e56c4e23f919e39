//! `codis-ctl`: the control tool (see `cluster::ctl`).

fn main() {
    std::process::exit(cluster::ctl::main(std::env::args().skip(1).collect()));
}
