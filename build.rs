//! Tells the tests what this machine has, so that a test that cannot run here is reported as
//! *ignored, with its reason* in the test runner's summary instead of passing silently:
//!
//! - `cortexfit_real_data`: the licensed real scan is at `$CORTEXFIT_SHARED/data/…` (default
//!   `../shared` next to the repository); its path is passed on as `CORTEXFIT_REAL_DATA`.
//! - `cortexfit_pytorch_fixture`: the PyTorch checkpoint fixtures are at
//!   `$CORTEXFIT_SHARED/fixtures/pytorch/` (neuralpredictors models saved with `torch.save`);
//!   their folder is passed on as `CORTEXFIT_PYTORCH_FIXTURE`.

use std::path::PathBuf;

const SCAN: &str = "data/lurz2020_static20457-5-9";
const PYTORCH_FIXTURE: &str = "fixtures/pytorch";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(cortexfit_real_data)");
    println!("cargo::rustc-check-cfg=cfg(cortexfit_pytorch_fixture)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CORTEXFIT_SHARED");

    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let shared = std::env::var_os("CORTEXFIT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../shared"));
    let scan = shared.join(SCAN);
    // One file of the scan stands for all of it: watching it re-runs this script when the data
    // goes away. (A missing path cannot be watched without re-running the script, and so
    // rebuilding the crate, on every build; after adding the data, `touch build.rs`.)
    let marker = scan.join("meta/trials/tiers.npy");
    if marker.is_file() {
        println!("cargo::rerun-if-changed={}", marker.display());
        println!("cargo::rustc-cfg=cortexfit_real_data");
        println!("cargo::rustc-env=CORTEXFIT_REAL_DATA={}", scan.display());
    }

    let fixture = shared.join(PYTORCH_FIXTURE);
    let marker = fixture.join("io.npz");
    if marker.is_file() {
        println!("cargo::rerun-if-changed={}", marker.display());
        println!("cargo::rustc-cfg=cortexfit_pytorch_fixture");
        println!(
            "cargo::rustc-env=CORTEXFIT_PYTORCH_FIXTURE={}",
            fixture.display()
        );
    }
}
