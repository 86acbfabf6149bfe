//! Throttling of failed credentials per client address, so that a shared
//! secret cannot be guessed quickly from one place.
//!
//! Each port counts the wrong secrets every client address presents (IPv4
//! addresses whole, IPv6 addresses by their /64 prefix, since one host
//! commonly holds a whole /64). Once an address has [`Throttle::limit`]
//! failures in one window (fixed, starting at its first failure), every
//! request of that address that needs a secret is refused with 429 and
//! `Retry-After` until the window ends, even one with the right secret: a
//! guesser learns nothing from a throttled answer. A missing secret is not a
//! failure; a right one does not clear earlier failures.
//!
//! Memory is bounded: at most [`Throttle::capacity`] addresses are counted.
//! When the map is full, addresses whose window has ended are dropped first,
//! then the address with the fewest failures that is not throttled. A
//! throttled address is never dropped before its window ends, so filling the
//! map with other addresses cannot unlock it; an address that finds the map
//! full of throttled addresses is not counted (and a warning is logged).
//!
//! Behind a reverse proxy every client has the proxy's address and shares
//! its budget; Ensign does not trust `X-Forwarded-For`, which any client can
//! write.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The address of the client at the other end of a request's connection,
/// inserted into every request's extensions by [`serve`](crate::serve).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// The client address of a request, if its listener recorded one (requests
/// built in-process, as tests do, have none and are never throttled).
pub fn client_ip(extensions: &http::Extensions) -> Option<IpAddr> {
    extensions.get::<ClientAddr>().map(|client| client.0.ip())
}

/// Failures allowed per client address and window by [`Throttle::default`].
pub const DEFAULT_FAILURE_LIMIT: u32 = 10;

/// The window of [`Throttle::default`].
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

/// Client addresses counted at most by [`Throttle::default`] (a map of at
/// most about 1.6 MB: 32,768 buckets of 48 bytes and a control byte).
pub const DEFAULT_CAPACITY: usize = 16_384;

/// A refused request of a throttled client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// How long until the address's window ends (at least one second).
    pub retry_after: Duration,
}

/// What one client address did in its current window.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

#[derive(Debug, Default)]
struct Counters {
    by_client: HashMap<IpAddr, Failures>,
    /// Whether the "map full of throttled addresses" warning was logged (reset
    /// when a slot frees), so an attack logs it once rather than per request.
    warned_full: bool,
    /// When the map was found full of throttled addresses: the end of the
    /// earliest window, before which no slot can free (so no scan is needed).
    full_until: Option<Instant>,
}

/// Counts failed credentials per client address; see the module docs.
#[derive(Debug)]
pub struct Throttle {
    limit: u32,
    window: Duration,
    capacity: usize,
    counters: Mutex<Counters>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(DEFAULT_FAILURE_LIMIT, DEFAULT_WINDOW, DEFAULT_CAPACITY)
    }
}

/// The key an address is counted under: IPv4 (also IPv4-mapped IPv6) whole,
/// IPv6 by its /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

impl Throttle {
    /// Allows `limit` failures per client address in each `window`, counting
    /// at most `capacity` addresses.
    pub fn new(limit: u32, window: Duration, capacity: usize) -> Self {
        Throttle {
            limit: limit.max(1),
            window,
            capacity: capacity.max(1),
            counters: Mutex::default(),
        }
    }

    /// Failures allowed per client address and window.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Client addresses counted at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many client addresses are counted now (never over the capacity).
    pub fn tracked(&self) -> usize {
        self.lock().by_client.len()
    }

    /// Whether `client` may try a secret now.
    pub fn check(&self, client: Option<IpAddr>) -> Result<(), Throttled> {
        self.check_at(client, Instant::now())
    }

    /// Counts a wrong secret from `client`.
    pub fn record_failure(&self, client: Option<IpAddr>) {
        self.record_failure_at(client, Instant::now());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn ended(&self, failures: &Failures, now: Instant) -> bool {
        now.saturating_duration_since(failures.since) >= self.window
    }

    fn check_at(&self, client: Option<IpAddr>, now: Instant) -> Result<(), Throttled> {
        let Some(ip) = client else { return Ok(()) };
        let counters = self.lock();
        match counters.by_client.get(&key(ip)) {
            Some(failures) if failures.count >= self.limit && !self.ended(failures, now) => {
                let left = self
                    .window
                    .saturating_sub(now.saturating_duration_since(failures.since));
                // Whole seconds, rounded up, for `Retry-After`.
                let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                Err(Throttled {
                    retry_after: Duration::from_secs(seconds.max(1)),
                })
            }
            _ => Ok(()),
        }
    }

    fn record_failure_at(&self, client: Option<IpAddr>, now: Instant) {
        let Some(ip) = client else { return };
        let ip = key(ip);
        let mut counters = self.lock();
        if let Some(failures) = counters.by_client.get_mut(&ip) {
            if now.saturating_duration_since(failures.since) >= self.window {
                *failures = Failures {
                    count: 1,
                    since: now,
                };
            } else {
                failures.count = failures.count.saturating_add(1);
            }
            return;
        }
        if counters.by_client.len() >= self.capacity && !self.make_room(&mut counters, now) {
            if !counters.warned_full {
                counters.warned_full = true;
                tracing::warn!(
                    capacity = self.capacity,
                    "every counted client address is throttled; failures of further addresses are not counted"
                );
            }
            return;
        }
        counters.warned_full = false;
        counters.by_client.insert(
            ip,
            Failures {
                count: 1,
                since: now,
            },
        );
    }

    /// Frees a slot: drops ended windows, else the unthrottled address with
    /// the fewest failures. False when every counted address is throttled.
    fn make_room(&self, counters: &mut Counters, now: Instant) -> bool {
        if counters.full_until.is_some_and(|until| now < until) {
            return false;
        }
        counters.full_until = None;
        counters
            .by_client
            .retain(|_, failures| !self.ended(failures, now));
        if counters.by_client.len() < self.capacity {
            return true;
        }
        let evictable = counters
            .by_client
            .iter()
            .filter(|(_, failures)| failures.count < self.limit)
            .min_by_key(|(_, failures)| (failures.count, failures.since))
            .map(|(ip, _)| *ip);
        match evictable {
            Some(ip) => {
                counters.by_client.remove(&ip);
                true
            }
            None => {
                counters.full_until = counters
                    .by_client
                    .values()
                    .map(|failures| failures.since + self.window)
                    .min();
                false
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn an_address_is_throttled_after_the_limit_until_its_window_ends() {
        let throttle = Throttle::new(3, Duration::from_secs(60), 100);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(throttle.check_at(ip("192.0.2.1"), start), Ok(()));
            throttle.record_failure_at(ip("192.0.2.1"), start);
        }
        let later = start + Duration::from_millis(20_500);
        assert_eq!(
            throttle.check_at(ip("192.0.2.1"), later),
            Err(Throttled {
                retry_after: Duration::from_secs(40)
            })
        );
        // Other addresses, and requests without an address, are unaffected.
        assert_eq!(throttle.check_at(ip("192.0.2.2"), later), Ok(()));
        assert_eq!(throttle.check_at(None, later), Ok(()));
        // The window ends: a fresh budget.
        let next = start + Duration::from_secs(60);
        assert_eq!(throttle.check_at(ip("192.0.2.1"), next), Ok(()));
        throttle.record_failure_at(ip("192.0.2.1"), next);
        assert_eq!(throttle.check_at(ip("192.0.2.1"), next), Ok(()));
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_prefix() {
        let throttle = Throttle::new(2, Duration::from_secs(60), 100);
        let now = Instant::now();
        throttle.record_failure_at(ip("2001:db8:1:2::1"), now);
        throttle.record_failure_at(ip("2001:db8:1:2:ffff::9"), now);
        assert!(throttle.check_at(ip("2001:db8:1:2::abcd"), now).is_err());
        assert_eq!(throttle.check_at(ip("2001:db8:1:3::1"), now), Ok(()));
        // IPv4-mapped addresses are their IPv4 address.
        throttle.record_failure_at(ip("::ffff:192.0.2.7"), now);
        throttle.record_failure_at(ip("192.0.2.7"), now);
        assert!(throttle.check_at(ip("192.0.2.7"), now).is_err());
    }

    #[test]
    fn a_full_map_never_unlocks_a_throttled_address_nor_grows() {
        let throttle = Throttle::new(3, Duration::from_secs(60), 64);
        let now = Instant::now();
        for _ in 0..3 {
            throttle.record_failure_at(ip("198.51.100.1"), now);
        }
        // Many other addresses fail, far more than the map holds.
        for n in 0..10_000u32 {
            let other = IpAddr::V4((0x0a00_0000 + n).into());
            for _ in 0..3 {
                throttle.record_failure_at(Some(other), now);
            }
            assert!(throttle.tracked() <= throttle.capacity());
        }
        assert!(throttle.check_at(ip("198.51.100.1"), now).is_err());
        assert_eq!(throttle.tracked(), 64);
        // Once windows end, room is made again.
        let later = now + Duration::from_secs(61);
        throttle.record_failure_at(ip("203.0.113.5"), later);
        assert_eq!(throttle.tracked(), 1);
    }

    #[test]
    fn unthrottled_addresses_make_room_for_new_ones() {
        let throttle = Throttle::new(3, Duration::from_secs(60), 2);
        let now = Instant::now();
        for _ in 0..3 {
            throttle.record_failure_at(ip("192.0.2.1"), now);
        }
        throttle.record_failure_at(ip("192.0.2.2"), now);
        throttle.record_failure_at(ip("192.0.2.3"), now);
        assert_eq!(throttle.tracked(), 2);
        assert!(throttle.check_at(ip("192.0.2.1"), now).is_err());
    }
}
