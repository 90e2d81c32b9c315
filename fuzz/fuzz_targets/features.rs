//! The feature-expression parser, and what parses evaluated on a few bars.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.len() > 512 {
        return;
    }
    if let Ok(e) = mlt_eval::features::parse(text) {
        let bars = mlt_eval::synthetic::generate(&mlt_eval::synthetic::Synthetic {
            days: 64,
            ..Default::default()
        })
        .expect("bars");
        let _ = mlt_eval::features::eval(&e, &bars);
    }
});
