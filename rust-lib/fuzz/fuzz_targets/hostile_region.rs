//! Arbitrary region contents (and rewrites between steps) fed to both roles.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    rpmsg_engine::testing::exercise_hostile_region(data);
});
