//! The domain: orders, lines, money and error codes. Pure data, no I/O.

pub mod code;
pub mod money;
pub mod order;

pub use code::ErrorCode;
pub use order::*;
