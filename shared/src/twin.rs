//! The twin table and the derivation of device events from its stream.
