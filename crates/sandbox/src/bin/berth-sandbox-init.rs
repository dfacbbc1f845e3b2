//! A stand-alone sandbox helper: what `berth` does when it re-executes
//! itself, for programs other than `berth` that use `berth-sandbox` (and
//! for this crate's tests). It is not meant to be run by hand.

fn main() {
    berth_sandbox::init_if_requested();
    eprintln!("berth-sandbox-init: this program is started by berth-sandbox, not by hand");
    std::process::exit(2);
}
