//! Reading Kubernetes resource quantities ("100m", "1.5Gi", "2e3") as numbers, rounding up
//! like apimachinery's `Quantity.Value()` and `MilliValue()`. Only the kubelet's own needs
//! are covered: parsing and the two rounded views.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid quantity {0:?}")]
pub struct QuantityError(pub String);

/// An exact quantity: `mantissa * 10^exp10 * 2^exp2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exact {
    mantissa: i128,
    exp10: i32,
    exp2: u32,
}

fn parse(s: &str) -> Result<Exact, QuantityError> {
    let bad = || QuantityError(s.to_owned());
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let number_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_end);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(bad());
    }
    let digits = format!("{int_part}{frac_part}");
    let mut mantissa: i128 = digits.trim_start_matches('0').parse().or_else(|_| {
        if digits.chars().all(|c| c == '0') {
            Ok(0)
        } else {
            Err(bad())
        }
    })?;
    if negative {
        mantissa = -mantissa;
    }
    let mut exp10 = -i32::try_from(frac_part.len()).map_err(|_| bad())?;
    let mut exp2 = 0;
    match suffix {
        "" => {}
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        "Ki" => exp2 = 10,
        "Mi" => exp2 = 20,
        "Gi" => exp2 = 30,
        "Ti" => exp2 = 40,
        "Pi" => exp2 = 50,
        "Ei" => exp2 = 60,
        other => {
            let exponent = other.strip_prefix(['e', 'E']).ok_or_else(bad)?;
            exp10 += exponent.parse::<i32>().map_err(|_| bad())?;
        }
    }
    Ok(Exact {
        mantissa,
        exp10,
        exp2,
    })
}

impl Exact {
    /// `ceil(self * 10^scale)`, saturated to the i64 range as apimachinery does.
    fn scaled_ceil(self, scale: i32) -> i64 {
        let saturate = |neg: bool| if neg { i64::MIN } else { i64::MAX };
        let neg = self.mantissa < 0;
        let Some(mut v) = self.mantissa.checked_mul(1i128 << self.exp2) else {
            return saturate(neg);
        };
        let exp = self.exp10 + scale;
        if exp >= 0 {
            for _ in 0..exp {
                match v.checked_mul(10) {
                    Some(n) => v = n,
                    None => return saturate(neg),
                }
            }
        } else {
            let mut divisor: i128 = 1;
            for _ in 0..(-exp) {
                match divisor.checked_mul(10) {
                    Some(d) => divisor = d,
                    // Smaller than any representable unit: rounds up to 1 (or down to 0).
                    None => return if v > 0 { 1 } else { 0 },
                }
            }
            let q = v.div_euclid(divisor);
            v = if v.rem_euclid(divisor) == 0 { q } else { q + 1 };
        }
        i64::try_from(v).unwrap_or_else(|_| saturate(neg))
    }
}

/// `Quantity.Value()`: the value rounded up to an integer.
pub fn value(q: &Quantity) -> Result<i64, QuantityError> {
    Ok(parse(q.0.trim())?.scaled_ceil(0))
}

/// `Quantity.MilliValue()`: the value times 1000, rounded up.
pub fn milli_value(q: &Quantity) -> Result<i64, QuantityError> {
    Ok(parse(q.0.trim())?.scaled_ceil(3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity(s.into())
    }

    #[test]
    fn values_round_up_like_apimachinery() {
        let table = [
            ("0", 0, 0),
            ("100m", 1, 100),
            ("1", 1, 1000),
            ("1.5", 2, 1500),
            ("250u", 1, 1),
            ("1Ki", 1024, 1_024_000),
            ("128Mi", 134_217_728, 134_217_728_000),
            ("1G", 1_000_000_000, 1_000_000_000_000),
            ("1e3", 1000, 1_000_000),
            ("1.5Gi", 1_610_612_736, 1_610_612_736_000),
            ("5n", 1, 1),
        ];
        for (s, v, m) in table {
            assert_eq!(value(&q(s)), Ok(v), "value of {s}");
            assert_eq!(milli_value(&q(s)), Ok(m), "milli value of {s}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for s in ["", "abc", "1Zi", "1.2.3", "m"] {
            assert!(value(&q(s)).is_err(), "{s}");
        }
    }

    #[test]
    fn saturates_huge_values() {
        assert_eq!(value(&q("100Ei")), Ok(i64::MAX));
    }
}
