//! The CSV and Parquet loaders on arbitrary files.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        for adjusted in [false, true] {
            if let Ok((b, report)) = mlt_eval::data::parse_csv(text, "fuzz.csv", adjusted) {
                assert!(b.days.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
                let _ = report.problems("fuzz.csv");
            }
        }
    }
    // Parquet is read from a file (its reader seeks).
    let path = std::env::temp_dir().join(format!("mlt-fuzz-{}.parquet", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        let _ = mlt_eval::data::read_bars(&path, false);
    }
});
