//! The proxy only ever sits between two loopback endpoints: it exists to
//! reproduce network faults in tests and benchmarks on one machine, and
//! refusing anything else keeps it from being pointed at (or exposed to) a
//! real network by mistake.

use std::net::SocketAddr;

/// An address that is not on loopback (127.0.0.0/8 or ::1).
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{role} address {addr} is not on loopback (only 127.0.0.0/8 and ::1 are allowed)")]
pub struct NotLoopback {
    /// Which address: `upstream` or `listen`.
    pub role: &'static str,
    pub addr: SocketAddr,
}

/// Accepts `addr` only if it is 127.0.0.0/8 or ::1.
pub fn ensure_loopback(role: &'static str, addr: SocketAddr) -> Result<SocketAddr, NotLoopback> {
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(NotLoopback { role, addr })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses_are_accepted() {
        for addr in ["127.0.0.1:5000", "127.8.9.10:1", "[::1]:5000"] {
            let addr: SocketAddr = addr.parse().unwrap();
            assert_eq!(ensure_loopback("upstream", addr), Ok(addr));
        }
    }

    #[test]
    fn other_addresses_are_refused_with_their_role() {
        for addr in [
            "10.0.0.1:5000",
            "0.0.0.0:5000",
            "[::]:80",
            "[::ffff:8.8.8.8]:53",
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            let error = ensure_loopback("upstream", addr).unwrap_err();
            assert!(error.to_string().starts_with("upstream address"), "{error}");
        }
    }
}
