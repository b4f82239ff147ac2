//! Integration tests of the store through its public API.

mod cap;
mod disk;
mod harness;
mod lifecycle;
mod proptests;
mod read_write;
