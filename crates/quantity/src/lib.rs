//! Kubernetes resource quantities ("500m", "1.5Gi", "2e3") with apimachinery's semantics:
//! parsing as `resource.ParseQuantity` does (values below one nano-unit round up, away from
//! zero), the rounded views `Value()` and `MilliValue()`, ordering, and the canonical strings
//! `resource.NewQuantity` / `NewMilliQuantity` print.

mod canonical;
mod format;

pub use canonical::canonical_string;
pub use format::{binary_string, cpu_millis_string};

use std::cmp::Ordering;
use std::str::FromStr;

/// Why a string is not a quantity we can hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Upstream's own message for a malformed quantity.
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    Syntax,
    #[error("quantity is too large")]
    TooLarge,
}

/// An exact quantity in nano-units (10^-9). i128 holds the largest binary suffix (Ei) with
/// nano precision and far beyond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity {
    nanos: i128,
}

impl Quantity {
    pub const ZERO: Quantity = Quantity { nanos: 0 };

    /// Parses a quantity; surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let text = text.trim();
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_len);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
            return Err(QuantityError::Syntax);
        }
        let (binary_power, decimal_exponent) = parse_suffix(suffix)?;
        let digits = format!("{whole}{fraction}");
        let digits = digits.trim_start_matches('0');
        let mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| QuantityError::TooLarge)?
        };
        let scaled = mantissa
            .checked_mul(1i128 << binary_power)
            .ok_or(QuantityError::TooLarge)?;
        // To nano-units: the decimal point moves by 9, the suffix's exponent and the fraction.
        let fraction_len = i64::try_from(fraction.len()).map_err(|_| QuantityError::TooLarge)?;
        let shift = decimal_exponent
            .checked_add(9 - fraction_len)
            .ok_or(QuantityError::TooLarge)?;
        let magnitude = shift_ceil(scaled, shift).ok_or(QuantityError::TooLarge)?;
        Ok(Quantity {
            nanos: if negative { -magnitude } else { magnitude },
        })
    }

    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// The quantity times 10^`scale`, rounded away from zero to a whole number, exactly.
    pub fn scaled_ceil(&self, scale: u32) -> i128 {
        let magnitude = self.nanos.unsigned_abs();
        let rounded = match 9u32.checked_sub(scale) {
            Some(down) => magnitude.div_ceil(10u128.pow(down)),
            None => magnitude.saturating_mul(10u128.saturating_pow(scale - 9)),
        };
        let rounded = i128::try_from(rounded).unwrap_or(i128::MAX);
        if self.nanos < 0 { -rounded } else { rounded }
    }

    /// `Quantity.Value()`: whole units rounded up, saturated to the i64 range.
    pub fn value(&self) -> i64 {
        saturate(self.scaled_ceil(0))
    }

    /// `Quantity.MilliValue()`: thousandths rounded up, saturated to the i64 range.
    pub fn milli_value(&self) -> i64 {
        saturate(self.scaled_ceil(3))
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;

    fn from_str(text: &str) -> Result<Self, QuantityError> {
        Quantity::parse(text)
    }
}

/// `Value()` of a quantity string.
pub fn value(text: &str) -> Result<i64, QuantityError> {
    Quantity::parse(text).map(|q| q.value())
}

/// `MilliValue()` of a quantity string.
pub fn milli_value(text: &str) -> Result<i64, QuantityError> {
    Quantity::parse(text).map(|q| q.milli_value())
}

fn saturate(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

/// `value * 10^shift`, rounded up for a negative shift; `None` on overflow.
fn shift_ceil(value: i128, shift: i64) -> Option<i128> {
    let power = u32::try_from(shift.unsigned_abs()).ok();
    match shift.cmp(&0) {
        Ordering::Equal => Some(value),
        Ordering::Greater => value.checked_mul(10i128.checked_pow(power?)?),
        // Beyond i128's powers of ten only a zero stays zero; anything else is one nano.
        Ordering::Less => Some(match power.and_then(|p| 10i128.checked_pow(p)) {
            Some(divisor) => (value + divisor - 1) / divisor,
            None => i128::from(value > 0),
        }),
    }
}

/// (power of two, power of ten) of a suffix.
fn parse_suffix(suffix: &str) -> Result<(u32, i64), QuantityError> {
    Ok(match suffix {
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "" => (0, 0),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        _ => {
            let exponent = suffix
                .strip_prefix(['e', 'E'])
                .ok_or(QuantityError::Syntax)?;
            let unsigned = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                return Err(QuantityError::Syntax);
            }
            (0, exponent.parse().map_err(|_| QuantityError::TooLarge)?)
        }
    })
}

#[cfg(test)]
mod tests;
