//! The scheduler's decision on an unauthenticated peer's first frame.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mlt_protocol::handshake::Role;

fuzz_target!(|data: &[u8]| {
    let roles = |secret: &str| match secret {
        "n" => Some(Role::Node),
        "c" => Some(Role::Client),
        _ => None,
    };
    if let Ok(h) = mlt_scheduler::server::admit(Some(data), roles) {
        assert!(!h.name.chars().any(char::is_control));
    }
});
