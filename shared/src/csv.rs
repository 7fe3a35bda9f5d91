//! Headerless CSV rows of the hourly export.
