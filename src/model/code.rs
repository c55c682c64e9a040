//! The error codes an order can fail with, in their order of precedence.

use std::fmt;

/// Why an order failed. The declaration order is the precedence order of the
/// checks: when several apply, the smallest one is the order's `error_code`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
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
    /// Every code, in precedence order (the declaration order: a test holds
    /// it to the derived list).
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
        self.into()
    }

    pub fn parse(s: &str) -> Option<ErrorCode> {
        s.parse().ok()
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
        assert_eq!(
            &ErrorCode::ALL[..],
            <ErrorCode as strum::VariantArray>::VARIANTS
        );
        assert_eq!(ErrorCode::PanDetected.as_str(), "PAN_DETECTED");
        assert_eq!(ErrorCode::parse("pan_detected"), None);
        assert!(ErrorCode::MalformedRecord < ErrorCode::MissingField);
        assert!(ErrorCode::PanDetected < ErrorCode::UnknownSku);
        assert!(ErrorCode::OrderIdConflict < ErrorCode::InsufficientStock);
        assert_eq!(ErrorCode::parse("NOPE"), None);
    }
}
