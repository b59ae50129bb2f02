//! Manifests as the scanner reads them (multi-document YAML, JSON, Lists): never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut scanner = ward_scan::Scanner::new();
    if scanner.add_str("fuzz.yaml", text).is_ok() {
        let report = scanner.finish();
        let mut out = Vec::new();
        let _ = report.write_json(&mut out);
    }
});
