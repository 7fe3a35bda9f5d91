//! The proxy against real local servers on loopback, with small real
//! delays (tokio's paused clock does not apply to real sockets).

mod control_api;
mod http_mode;
mod support;
mod tcp_faults;
