//! Protobuf wire primitives, field paths for error messages and `metav1.Time` conversion.
//!
//! Only what the Kubernetes messages use: varints, length-delimited fields, and skipping of
//! fixed-width fields with unknown numbers. Groups (wire types 3 and 4) never appear in
//! Kubernetes messages and are rejected.

use std::fmt::Write as _;

// === Paths ===

/// One step of a [`Path`].
#[derive(Clone, Copy)]
pub(crate) enum Segment<'a> {
    /// The start of a path: a kind name when decoding, empty when encoding.
    Root(&'a str),
    /// A JSON field name.
    Field(&'a str),
    /// A list index.
    Index(usize),
    /// A map key (never a map value: values may be secret).
    Key(&'a str),
}

/// A field path kept as a linked list on the stack, rendered only when an error needs it.
#[derive(Clone, Copy)]
pub(crate) struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    segment: Segment<'a>,
}

impl<'a> Path<'a> {
    pub(crate) const fn root(name: &'a str) -> Self {
        Self {
            parent: None,
            segment: Segment::Root(name),
        }
    }

    pub(crate) fn field(&'a self, name: &'a str) -> Path<'a> {
        Path {
            parent: Some(self),
            segment: Segment::Field(name),
        }
    }

    pub(crate) fn index(&'a self, index: usize) -> Path<'a> {
        Path {
            parent: Some(self),
            segment: Segment::Index(index),
        }
    }

    pub(crate) fn key(&'a self, key: &'a str) -> Path<'a> {
        Path {
            parent: Some(self),
            segment: Segment::Key(key),
        }
    }

    /// Renders the path as `metadata.labels[app]` or `rules[0].verbs`.
    pub(crate) fn render(&self) -> String {
        let mut segments = Vec::new();
        let mut current = Some(self);
        while let Some(path) = current {
            segments.push(path.segment);
            current = path.parent;
        }
        let mut out = String::new();
        for segment in segments.into_iter().rev() {
            match segment {
                Segment::Root(name) => out.push_str(name),
                Segment::Field(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                Segment::Index(index) => {
                    let _ = write!(out, "[{index}]");
                }
                Segment::Key(key) => {
                    let _ = write!(out, "[{key}]");
                }
            }
        }
        if out.is_empty() {
            out.push_str("<root>");
        }
        out
    }
}

// === Reading ===

/// Protobuf wire types used by Kubernetes messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WireType {
    Varint,
    Fixed64,
    LengthDelimited,
    Fixed32,
}

/// A cursor over one message's bytes. Every length is checked against the bytes that remain
/// before anything is sliced, so a hostile length can never cause a large allocation.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn varint(&mut self) -> Result<u64, &'static str> {
        let mut value: u64 = 0;
        for (i, &byte) in self.buf.iter().enumerate().take(10) {
            if i == 9 && byte > 1 {
                return Err("varint overflows 64 bits");
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        if self.buf.len() >= 10 {
            Err("varint overflows 64 bits")
        } else {
            Err("truncated varint")
        }
    }

    /// Reads a field key: its number and wire type.
    pub(crate) fn key(&mut self) -> Result<(u32, WireType), &'static str> {
        let key = self.varint()?;
        let number = u32::try_from(key >> 3).map_err(|_| "field number out of range")?;
        if number == 0 || number > MAX_FIELD_NUMBER {
            return Err("field number out of range");
        }
        let wire_type = match key & 7 {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => WireType::LengthDelimited,
            5 => WireType::Fixed32,
            3 | 4 => return Err("groups are not supported"),
            _ => return Err("invalid wire type"),
        };
        Ok((number, wire_type))
    }

    pub(crate) fn length_delimited(&mut self) -> Result<&'a [u8], &'static str> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| "length out of range")?;
        if len > self.buf.len() {
            return Err("length exceeds the remaining bytes");
        }
        let (head, tail) = self.buf.split_at(len);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn skip(&mut self, wire_type: WireType) -> Result<(), &'static str> {
        let width = match wire_type {
            WireType::Varint => return self.varint().map(drop),
            WireType::LengthDelimited => return self.length_delimited().map(drop),
            WireType::Fixed64 => 8,
            WireType::Fixed32 => 4,
        };
        if self.buf.len() < width {
            return Err("truncated fixed-width field");
        }
        self.buf = &self.buf[width..];
        Ok(())
    }
}

// === Writing ===

pub(crate) const fn varint_len(mut value: u64) -> usize {
    let mut len = 1;
    while value >= 0x80 {
        value >>= 7;
        len += 1;
    }
    len
}

pub(crate) fn put_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        // Truncation intended: the low 7 bits plus the continuation bit.
        buf.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

pub(crate) const fn key_len(number: u32) -> usize {
    varint_len((number as u64) << 3)
}

pub(crate) fn put_key(buf: &mut Vec<u8>, number: u32, wire_type: WireType) {
    let wire = match wire_type {
        WireType::Varint => 0,
        WireType::Fixed64 => 1,
        WireType::LengthDelimited => 2,
        WireType::Fixed32 => 5,
    };
    put_varint(buf, (u64::from(number) << 3) | wire);
}

// === metav1.Time ===

/// Formats Unix seconds as RFC 3339 in UTC with second precision, like `metav1.Time`'s JSON
/// form (`2023-09-01T15:56:49Z`). Returns `None` outside the years 0000..=9999, which Go's
/// `MarshalJSON` also refuses.
pub(crate) fn format_rfc3339(seconds: i64) -> Option<String> {
    let days = seconds.div_euclid(86_400);
    let secs_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60
    ))
}

/// Parses an RFC 3339 timestamp (`2023-09-01T15:56:49Z`, optional fraction, `Z` or `±hh:mm`)
/// into Unix seconds. The fraction is dropped, as `metav1.Time` keeps second precision.
///
/// Returns `None` when the text is not of that form or names an impossible date.
pub(crate) fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let second = digits(&b[17..19])?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &b[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let count = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if count == 0 || count > 9 {
            return None;
        }
        rest = &fraction[count..];
    }
    let offset = match rest {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2])?;
            let minutes = digits(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 3600 + minutes * 60;
            if *sign == b'-' { -offset } else { offset }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

fn digits(bytes: &[u8]) -> Option<i64> {
    bytes.iter().try_fold(0i64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days.saturating_add(719_468);
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The largest field number protobuf allows.
const MAX_FIELD_NUMBER: u32 = (1 << 29) - 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_round_trips() {
        for (text, seconds) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2023-09-01T15:56:49Z", 1_693_583_809),
            ("2022-04-30T10:47:31Z", 1_651_315_651),
            ("2000-02-29T23:59:59Z", 951_868_799),
            ("1969-12-31T23:59:59Z", -1),
            ("0001-01-01T00:00:00Z", -62_135_596_800),
            ("9999-12-31T23:59:59Z", 253_402_300_799),
        ] {
            assert_eq!(parse_rfc3339(text), Some(seconds), "{text}");
            assert_eq!(format_rfc3339(seconds).as_deref(), Some(text));
        }
        assert_eq!(
            parse_rfc3339("2023-09-01T17:56:49.123456+02:00"),
            Some(1_693_583_809)
        );
        assert_eq!(parse_rfc3339("2023-09-01T15:56:49.5Z"), Some(1_693_583_809));
        for bad in [
            "",
            "2023-09-01",
            "2023-09-01 15:56:49Z",
            "2023-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-09-01T24:00:00Z",
            "2023-09-01T15:56:49",
            "2023-09-01T15:56:49.Z",
            "2023-09-01T15:56:49+0200",
            "2023-09-01T15:56:49z",
            "+023-09-01T15:56:49Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert_eq!(format_rfc3339(i64::MAX), None);
        assert_eq!(format_rfc3339(i64::MIN), None);
    }

    #[test]
    fn varints() {
        for value in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, value);
            assert_eq!(buf.len(), varint_len(value));
            let mut reader = Reader::new(&buf);
            assert_eq!(reader.varint(), Ok(value));
            assert!(reader.is_empty());
        }
        assert!(Reader::new(&[0x80; 11]).varint().is_err());
        assert!(
            Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02])
                .varint()
                .is_err()
        );
        assert!(Reader::new(&[0x80]).varint().is_err());
        // A length far beyond the buffer is refused before anything is allocated.
        let mut huge = Vec::new();
        put_varint(&mut huge, u64::MAX >> 1);
        assert!(Reader::new(&huge).length_delimited().is_err());
    }

    #[test]
    fn paths_render() {
        let root = Path::root("");
        let data = root.field("data");
        let key = data.key("tls.crt");
        assert_eq!(key.render(), "data[tls.crt]");
        let rules = root.field("rules");
        let first = rules.index(0);
        let verbs = first.field("verbs");
        assert_eq!(verbs.render(), "rules[0].verbs");
        let kind = Path::root("Secret");
        assert_eq!(kind.field("metadata").render(), "Secret.metadata");
        assert_eq!(root.render(), "<root>");
    }
}
