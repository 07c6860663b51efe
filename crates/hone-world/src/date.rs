//! Calendar dates of the world: a plain (year, month, day) with the two text forms the corpus uses,
//! "14 March 1987" in prose and "1987-03-14" in metadata.

use crate::rng::{Draw, Rng};
use serde::{Serialize, Serializer};
use std::fmt;

/// Month names for prose dates.
pub const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A calendar date. Days stop at 28 so every drawn date exists without a leap-year rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

impl Date {
    /// A uniformly drawn date in the years `lo..=hi`.
    pub fn random(rng: &mut Rng, lo: i32, hi: i32) -> Date {
        Date { year: rng.int(lo as i64, hi as i64) as i32, month: rng.int(1, 12) as u8, day: rng.int(1, 28) as u8 }
    }

    /// A date no earlier than `self`, in the years up to `hi` (inclusive).
    pub fn random_after(self, rng: &mut Rng, hi: i32) -> Date {
        let hi = hi.max(self.year);
        loop {
            let d = Date::random(rng, self.year, hi);
            if d >= self {
                return d;
            }
        }
    }

    /// "14 March 1987".
    pub fn long(&self) -> String {
        format!("{} {} {}", self.day, self.month_name(), self.year)
    }

    /// "March 1987".
    pub fn month_year(&self) -> String {
        format!("{} {}", self.month_name(), self.year)
    }

    /// The English month name.
    pub fn month_name(&self) -> &'static str {
        MONTHS[self.month as usize - 1]
    }

    /// "1987-03-14".
    pub fn iso(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.iso())
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.iso())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{Stream, stream};

    #[test]
    fn formats() {
        let d = Date { year: 1987, month: 3, day: 14 };
        assert_eq!(d.long(), "14 March 1987");
        assert_eq!(d.iso(), "1987-03-14");
        assert_eq!(d.month_year(), "March 1987");
    }

    #[test]
    fn random_after_is_not_earlier() {
        let mut rng = stream(1, Stream::World);
        let d = Date { year: 1990, month: 6, day: 15 };
        for _ in 0..100 {
            let e = d.random_after(&mut rng, 1995);
            assert!(e >= d && e.year <= 1995);
        }
    }
}
