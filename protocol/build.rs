//! Builds `csrc/ldouble.c`: the strtod/strtold and `long double` helpers that
//! give `protocol::number` bit-exact parity with Redis' float parsing and
//! INCRBYFLOAT arithmetic.
fn main() {
    println!("cargo:rerun-if-changed=csrc/ldouble.c");
    cc::Build::new()
        .file("csrc/ldouble.c")
        .flag_if_supported("-std=c11")
        .warnings(true)
        .compile("codis_ldouble");
}
