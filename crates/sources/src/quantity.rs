//! Parsing of resource quantities (`500m`, `1Gi`, `2e3`), enough to check their syntax and compare
//! requests against limits the way the API server does.

/// Why a quantity string is not a valid Kubernetes quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    Syntax,
    #[error("quantity is too large")]
    TooLarge,
}

/// A quantity's value in nano-units (10^-9), rounded up like upstream rounds sub-nano values.
/// i128 holds the largest binary suffix (Ei) with nano precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity {
    nanos: i128,
}

impl Quantity {
    pub const ZERO: Quantity = Quantity { nanos: 0 };

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
        let digits = format!("{whole}{fraction}");
        let mantissa: i128 = digits.parse().map_err(|_| QuantityError::TooLarge)?;
        let (binary_power, decimal_exponent) = parse_suffix(suffix)?;
        let scaled = mantissa
            .checked_mul(1i128 << binary_power)
            .ok_or(QuantityError::TooLarge)?;
        // Nano units: shift the decimal point by 9, the suffix's exponent and the fraction digits.
        let shift = decimal_exponent + 9 - fraction.len() as i64;
        let nanos = if shift >= 0 {
            let factor = 10i128
                .checked_pow(u32::try_from(shift).map_err(|_| QuantityError::TooLarge)?)
                .ok_or(QuantityError::TooLarge)?;
            scaled.checked_mul(factor).ok_or(QuantityError::TooLarge)?
        } else {
            match 10i128.checked_pow(shift.unsigned_abs() as u32) {
                Some(divisor) => (scaled + divisor - 1) / divisor,
                None => i128::from(scaled > 0),
            }
        };
        Ok(Quantity {
            nanos: if negative { -nanos } else { nanos },
        })
    }
}

/// Returns (power of two, power of ten) for a suffix.
fn parse_suffix(suffix: &str) -> Result<(u32, i64), QuantityError> {
    let binary = match suffix {
        "Ki" => Some(10),
        "Mi" => Some(20),
        "Gi" => Some(30),
        "Ti" => Some(40),
        "Pi" => Some(50),
        "Ei" => Some(60),
        _ => None,
    };
    if let Some(power) = binary {
        return Ok((power, 0));
    }
    let decimal = match suffix {
        "n" => Some(-9),
        "u" => Some(-6),
        "m" => Some(-3),
        "" => Some(0),
        "k" => Some(3),
        "M" => Some(6),
        "G" => Some(9),
        "T" => Some(12),
        "P" => Some(15),
        "E" => Some(18),
        _ => None,
    };
    if let Some(exponent) = decimal {
        return Ok((0, exponent));
    }
    let exponent = suffix
        .strip_prefix(['e', 'E'])
        .ok_or(QuantityError::Syntax)?;
    let unsigned = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QuantityError::Syntax);
    }
    let value: i64 = exponent.parse().map_err(|_| QuantityError::TooLarge)?;
    Ok((0, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Quantity {
        Quantity::parse(text).unwrap()
    }

    #[test]
    fn equal_values_in_different_notations() {
        assert_eq!(q("1"), q("1000m"));
        assert_eq!(q("1k"), q("1e3"));
        assert_eq!(q("1Ki"), q("1024"));
        assert_eq!(q("0.5"), q("500m"));
        assert_eq!(q("1.5Gi"), q("1536Mi"));
        assert_eq!(q("+2"), q("2"));
    }

    #[test]
    fn ordering() {
        assert!(q("100m") < q("1"));
        assert!(q("1G") < q("1Gi"));
        assert!(q("-1") < q("0"));
        assert_eq!(q("0"), Quantity::ZERO);
        assert!(q("1n") > q("0"));
    }

    #[test]
    fn sub_nano_values_round_up() {
        assert_eq!(q("1e-10"), q("1n"));
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in [
            "", "abc", "1x", "1.2.3", "1Kb", "e3", "1e", "1e+", "--1", ".",
        ] {
            assert_eq!(Quantity::parse(bad), Err(QuantityError::Syntax), "{bad}");
        }
        assert_eq!(Quantity::parse("1e40"), Err(QuantityError::TooLarge));
    }
}
