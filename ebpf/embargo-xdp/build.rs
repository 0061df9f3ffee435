//! Rebuild the eBPF object when bpf-linker changes: it is the linker, but cargo cannot see it.
use which::which;

fn main() {
    // Unwrap is fine in a build script: a missing bpf-linker is the first thing to fix, and
    // `cargo xtask setup` installs it.
    let bpf_linker = which("bpf-linker").expect("bpf-linker not found; run `cargo xtask setup`");
    println!(
        "cargo:rerun-if-changed={}",
        bpf_linker.to_str().expect("utf-8 path")
    );
}
