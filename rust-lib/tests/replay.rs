//! Replays a few thousand pseudo-random region images through both roles (the same driver
//! as the fuzz target in rust-lib/fuzz, so ordinary `cargo test` covers it too).

use rpmsg_engine::testing::{exercise_hostile_region, HostileRun};

/// xorshift64*: deterministic, so a failure names its seed.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// Sums what the runs saw (each run checked its invariants itself).
fn add(total: &mut HostileRun, run: HostileRun) {
    for (t, r) in [(&mut total.remote, run.remote), (&mut total.host, run.host)] {
        t.delivered += r.delivered;
        t.announcements += r.announcements;
        t.rx_messages += r.rx_messages;
        t.errors += r.errors;
        t.peer_faults += r.peer_faults;
        t.broken |= r.broken;
    }
}

#[test]
fn random_region_images_never_panic() {
    let images = if cfg!(miri) { 4 } else { 3000 };
    let mut total = HostileRun::default();
    for seed in 0..images {
        let len = 8 + (seed as usize * 37) % 2048;
        let mut data = bytes(seed, len);
        // Bias some images toward small values, which pass more validation steps.
        if seed % 3 == 0 {
            for b in data.iter_mut().skip(8) {
                *b &= 0x1f;
            }
        }
        add(&mut total, exercise_hostile_region(&data));
    }
    if !cfg!(miri) {
        // The images reach the validation paths on both sides: peer faults are counted, and
        // counted as such, and some link was broken by a ring index.
        for side in [total.remote, total.host] {
            assert!(side.peer_faults > 0, "{total:?}");
            assert!(side.peer_faults <= side.errors, "{total:?}");
        }
        assert!(total.remote.broken || total.host.broken, "{total:?}");
    }
}

#[test]
fn structured_images_never_panic() {
    // All-zero, all-ones and repeating patterns hit the boundaries of every field.
    for fill in [0x00u8, 0xff, 0x01, 0x10, 0x80, 0x7f] {
        for len in [0usize, 1, 8, 9, 64, 513, 4096] {
            let mut data = vec![fill; len];
            if len > 0 {
                data[0] = 1;
            }
            let run = exercise_hostile_region(&data);
            // Nothing delivered that was not taken from a ring.
            for side in [run.remote, run.host] {
                assert!(
                    side.delivered + side.announcements <= side.rx_messages,
                    "{run:?}"
                );
            }
        }
    }
}
