//! The domain: orders, lines, money, error codes, runs and failures, time as
//! the history stores it, and the pure text rules every layer shares
//! (formats, cell escaping, card-number masking, terminal escaping). Pure
//! data and functions, no I/O (the clock aside: `clock::Timestamp::now`).

pub mod clock;
pub mod code;
pub mod escape;
pub mod failure;
pub mod fields;
pub mod format;
pub mod local_time;
pub mod money;
pub mod order;
pub mod pan;
pub mod rfc3339;
pub mod run;
pub mod spreadsheet;
pub mod text;

pub use code::ErrorCode;
pub use format::{CatalogFormat, FileFormat, InputFormat, ReportFormat};
pub use order::*;
