//! A resource quantity ("64Mi", "1.5G", "1e6", "250m") as a whole number, rounded up like
//! apimachinery's `Quantity.Value()` and `MilliValue()`. Only what an emptyDir sizeLimit and a
//! downward API resourceFieldRef need.

/// The quantity as a whole number (bytes for memory and storage, cores for cpu), rounded up.
/// `None` for anything that is not a valid non-negative quantity or does not fit in u64.
pub(crate) fn bytes(text: &str) -> Option<u64> {
    scaled(text, 0)
}

/// The quantity in thousandths (millicores for cpu), rounded up.
pub(crate) fn millis(text: &str) -> Option<u64> {
    scaled(text, 3)
}

/// The quantity times 10^`scale`, rounded up.
fn scaled(text: &str, scale: i32) -> Option<u64> {
    let text = text.trim();
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_end);
    let number = number.strip_prefix('+').unwrap_or(number);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !format!("{int_part}{frac_part}")
            .bytes()
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mantissa: u128 = format!("{int_part}{frac_part}").parse().ok()?;
    let mut exp10 = scale - i32::try_from(frac_part.len()).ok()?;
    let mut exp2 = 0u32;
    match suffix {
        "" => {}
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
            let exponent = other.strip_prefix(['e', 'E'])?;
            exp10 += exponent.parse::<i32>().ok()?;
        }
    }
    let scaled = mantissa.checked_mul(1u128.checked_shl(exp2)?)?;
    let value = if exp10 >= 0 {
        scaled.checked_mul(10u128.checked_pow(exp10.unsigned_abs())?)?
    } else {
        let divisor = 10u128.checked_pow(exp10.unsigned_abs())?;
        scaled.div_ceil(divisor)
    };
    u64::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::{bytes, millis};

    #[test]
    fn suffixes_and_rounding() {
        assert_eq!(bytes("128974848"), Some(128_974_848));
        assert_eq!(bytes("64Mi"), Some(64 << 20));
        assert_eq!(bytes("1.5Gi"), Some(3 << 29));
        assert_eq!(bytes("129M"), Some(129_000_000));
        assert_eq!(bytes("129e6"), Some(129_000_000));
        assert_eq!(bytes("1500m"), Some(2));
        assert_eq!(bytes("0.1"), Some(1));
    }

    #[test]
    fn millis_for_cpu() {
        assert_eq!(millis("250m"), Some(250));
        assert_eq!(millis("2"), Some(2000));
        assert_eq!(millis("1.5"), Some(1500));
        assert_eq!(millis("0.0001"), Some(1));
        assert_eq!(millis("1Ki"), Some(1_024_000));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "Mi", "1.2.3", "12Q", "-5", "1e", "99999999999Ei"] {
            assert_eq!(bytes(bad), None, "{bad:?}");
        }
    }
}
