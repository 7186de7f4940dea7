//! Lists the storage conformance cases for `storage_conformance_tests!`: every `pub async fn`
//! at the start of a line in `src/testing/conformance/<port>.rs` is a case of that port, so a
//! case added there runs on every storage without being listed by hand.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new("src/testing/conformance");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut ports: Vec<(String, Vec<String>)> = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("src/testing/conformance exists")
        .map(|entry| entry.expect("readable directory").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .filter(|path| path.file_stem().is_some_and(|stem| stem != "mod"))
        .collect();
    entries.sort();
    for path in entries {
        let port = path.file_stem().unwrap().to_string_lossy().into_owned();
        let source = std::fs::read_to_string(&path).expect("readable case file");
        let cases = source
            .lines()
            .filter_map(|line| line.strip_prefix("pub async fn "))
            .map(|rest| rest.split('(').next().unwrap_or_default().trim().to_owned())
            .collect();
        ports.push((port, cases));
    }

    let mut arms = String::new();
    for (port, cases) in &ports {
        writeln!(arms, "        mod {port} {{").unwrap();
        writeln!(arms, "            #[allow(unused_imports)]").unwrap();
        writeln!(arms, "            use super::*;").unwrap();
        for case in cases {
            writeln!(
                arms,
                "            $crate::__conformance_case!($make, {port}, {case});"
            )
            .unwrap();
        }
        writeln!(arms, "        }}").unwrap();
    }
    let generated = format!(
        "/// Generates one `#[tokio::test]` per conformance case, in one module per port.
///
/// `$make` is an expression giving a future of `Option<P>`, evaluated once per test for a
/// fresh storage, where `P` derefs to the storage (a `Box`, an `Arc`, or a guard that also
/// holds what must live as long as the storage, such as its temporary directory); `None`
/// skips the test (with a message), e.g. when no database URL is configured.
///
/// ```ignore
/// cartloop_core::storage_conformance_tests!(async {{ Some(Box::new(MemoryStorage::new())) }});
/// ```
#[macro_export]
macro_rules! storage_conformance_tests {{
    ($make:expr) => {{
        mod storage_conformance {{
            #[allow(unused_imports)]
            use super::*;
{arms}        }}
    }};
}}
"
    );
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("conformance_cases.rs");
    std::fs::write(out, generated).expect("writable OUT_DIR");
}
