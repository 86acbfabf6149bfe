//! The throttle's memory is bounded whatever the number of client addresses:
//! an instrumented allocator measures the map after far more addresses than it
//! counts have failed.

#![allow(clippy::unwrap_used, missing_docs)]

use std::alloc::System;
use std::net::{IpAddr, Ipv4Addr};

use ensign_http::Throttle;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn a_flood_of_addresses_keeps_the_map_within_its_capacity() {
    let region = Region::new(GLOBAL);
    let throttle = Throttle::default();
    let first = Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)));
    for _ in 0..throttle.limit() {
        throttle.record_failure(first);
    }
    // Four times as many addresses as are counted, each spending its budget.
    for n in 0..4 * throttle.capacity() as u32 {
        let client = Some(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)));
        for _ in 0..throttle.limit() {
            throttle.record_failure(client);
        }
    }
    assert_eq!(throttle.tracked(), throttle.capacity());
    assert!(throttle.check(first).is_err(), "still throttled");
    let change = region.change();
    let held = change
        .bytes_allocated
        .saturating_sub(change.bytes_deallocated);
    // 32,768 buckets of 48 bytes and a control byte, about 1.6 MB.
    assert!(held < 2 * 1024 * 1024, "the throttle holds {held} bytes");
    println!(
        "throttle holds {held} bytes for {} addresses",
        throttle.tracked()
    );
}
