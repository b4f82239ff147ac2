//! SMTP wire protocol without I/O: command parsing, reply table and byte receivers.

pub mod command;
pub mod decimal;
pub mod receiver;
pub mod reply;
