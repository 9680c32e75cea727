//! Material quantities are exact: integer thousandths of the material's unit (a gram, a metre,
//! a sheet). Floating point never touches stock, so stock is never silently wrong.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(pub i64);

pub const MILLI: i64 = 1000;

impl Amount {
    pub const ZERO: Amount = Amount(0);

    /// From a decimal number with at most three decimals.
    pub fn from_decimal(value: f64) -> Result<Amount, String> {
        if !value.is_finite() {
            return Err(format!("{value} is not a number"));
        }
        let scaled = value * MILLI as f64;
        let rounded = scaled.round();
        if (scaled - rounded).abs() > 1e-6 * scaled.abs().max(1.0) {
            return Err(format!("{value} has more than three decimals"));
        }
        if rounded.abs() > 9.0e15 {
            return Err(format!("{value} is too large"));
        }
        Ok(Amount(rounded as i64))
    }

    pub fn as_decimal(self) -> f64 {
        self.0 as f64 / MILLI as f64
    }

    pub fn times(self, n: i64) -> Amount {
        Amount(self.0 * n)
    }
}

impl std::ops::Add for Amount {
    type Output = Amount;
    fn add(self, rhs: Amount) -> Amount {
        Amount(self.0 + rhs.0)
    }
}

impl std::ops::Sub for Amount {
    type Output = Amount;
    fn sub(self, rhs: Amount) -> Amount {
        Amount(self.0 - rhs.0)
    }
}

impl std::iter::Sum for Amount {
    fn sum<I: Iterator<Item = Amount>>(iter: I) -> Amount {
        Amount(iter.map(|a| a.0).sum())
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let (whole, frac) = (abs / MILLI as u64, abs % MILLI as u64);
        if frac == 0 {
            write!(f, "{sign}{whole}")
        } else {
            let frac = format!("{frac:03}");
            write!(f, "{sign}{whole}.{}", frac.trim_end_matches('0'))
        }
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_decimal())
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
        let value = f64::deserialize(d)?;
        if value < 0.0 {
            return Err(serde::de::Error::custom(format!(
                "{value} is negative: stock and amounts are never below zero"
            )));
        }
        Amount::from_decimal(value).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Amount {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        f64::schema()
    }
}

impl utoipa::ToSchema for Amount {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_round_trip_exactly() {
        for (input, shown) in [
            (12.5, "12.5"),
            (0.001, "0.001"),
            (3.0, "3"),
            (1234.125, "1234.125"),
        ] {
            let a = Amount::from_decimal(input).unwrap();
            assert_eq!(a.to_string(), shown);
            assert_eq!(a.as_decimal(), input);
        }
        assert_eq!(Amount(-1500).to_string(), "-1.5");
    }

    #[test]
    fn too_fine_or_not_a_number_is_refused() {
        assert!(Amount::from_decimal(0.0001).is_err());
        assert!(Amount::from_decimal(f64::NAN).is_err());
    }
}
