//! The error codes an order can fail with, in their order of precedence.

use std::fmt;

/// Why an order failed. The declaration order is the precedence order of the
/// checks: when several apply, the smallest one is the order's `error_code`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum ErrorCode {
    MalformedRecord,
    MissingField,
    InvalidField,
    InconsistentOrder,
    DuplicateInInput,
    PanDetected,
    UnknownSku,
    CurrencyMismatch,
    PriceMismatch,
    PaymentMismatch,
    OrderIdConflict,
    InsufficientStock,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::MalformedRecord,
        ErrorCode::MissingField,
        ErrorCode::InvalidField,
        ErrorCode::InconsistentOrder,
        ErrorCode::DuplicateInInput,
        ErrorCode::PanDetected,
        ErrorCode::UnknownSku,
        ErrorCode::CurrencyMismatch,
        ErrorCode::PriceMismatch,
        ErrorCode::PaymentMismatch,
        ErrorCode::OrderIdConflict,
        ErrorCode::InsufficientStock,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedRecord => "MALFORMED_RECORD",
            ErrorCode::MissingField => "MISSING_FIELD",
            ErrorCode::InvalidField => "INVALID_FIELD",
            ErrorCode::InconsistentOrder => "INCONSISTENT_ORDER",
            ErrorCode::DuplicateInInput => "DUPLICATE_IN_INPUT",
            ErrorCode::PanDetected => "PAN_DETECTED",
            ErrorCode::UnknownSku => "UNKNOWN_SKU",
            ErrorCode::CurrencyMismatch => "CURRENCY_MISMATCH",
            ErrorCode::PriceMismatch => "PRICE_MISMATCH",
            ErrorCode::PaymentMismatch => "PAYMENT_MISMATCH",
            ErrorCode::OrderIdConflict => "ORDER_ID_CONFLICT",
            ErrorCode::InsufficientStock => "INSUFFICIENT_STOCK",
        }
    }

    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Catalog checks are the last ones whose failures all go into `error_detail`.
    pub fn is_catalog_check(self) -> bool {
        matches!(
            self,
            ErrorCode::UnknownSku | ErrorCode::CurrencyMismatch | ErrorCode::PriceMismatch
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_precedence_follows_the_spec_table() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
        }
        let mut sorted = ErrorCode::ALL;
        sorted.sort();
        assert_eq!(sorted, ErrorCode::ALL);
        assert!(ErrorCode::MalformedRecord < ErrorCode::MissingField);
        assert!(ErrorCode::PanDetected < ErrorCode::UnknownSku);
        assert!(ErrorCode::OrderIdConflict < ErrorCode::InsufficientStock);
        assert_eq!(ErrorCode::parse("NOPE"), None);
    }
}
