use std::fmt;
use std::time::Duration;

/// A value as written, before its rule checked it: a literal in `policies!`, a TOML value, or
/// the text of an environment variable.
///
/// Every rule also reads its type from text (`Text("200")` is a whole number), because
/// environment variables are text; `policies!` checks the literal's type itself first, so
/// `max = "150"` is still an error there.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Raw<'a> {
    /// `true` / `false`.
    Flag(bool),
    /// A whole number.
    Whole(i64),
    /// A number with a fraction.
    Number(f64),
    /// Text: durations (`"250ms"`), choices, URLs, and everything from the environment.
    Text(&'a str),
}

/// A value that passed its rule, in the rule's type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Typed<'a> {
    /// A duration (rules [`Rule::Duration`](crate::Rule::Duration)).
    Duration(Duration),
    /// A whole number.
    Whole(i64),
    /// A number (whole numbers are read as numbers too).
    Number(f64),
    /// `true` / `false`.
    Flag(bool),
    /// Text: a choice, a URL, a name.
    Text(&'a str),
}

impl Typed<'_> {
    /// The value as a number, for comparisons between keys: whole numbers and numbers.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Typed::Whole(n) => Some(*n as f64),
            Typed::Number(x) => Some(*x),
            _ => None,
        }
    }
}

impl fmt::Display for Typed<'_> {
    /// As a user would write it: durations rounded to the millisecond (`1m 30s`, `494ms`),
    /// text quoted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Typed::Duration(d) => f.write_str(&show_duration(*d)),
            Typed::Whole(n) => write!(f, "{n}"),
            Typed::Number(x) => write!(f, "{x}"),
            Typed::Flag(b) => write!(f, "{b}"),
            Typed::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// A duration for people: rounded to the millisecond, in the units humantime reads back
/// (`24h`, `30d`, `1m 30s`, `494ms`; `0s` for zero). Whole days only from two days up, so a
/// day reads `24h`.
pub fn show_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return if d.is_zero() { "0s" } else { "<1ms" }.to_owned();
    }
    const UNITS: [(u128, &str); 5] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1000, "s"),
        (1, "ms"),
    ];
    let mut parts = Vec::new();
    for (size, unit) in UNITS {
        if unit == "d" && ms < 2 * size {
            continue;
        }
        if ms >= size {
            parts.push(format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_written_and_round_to_milliseconds() {
        let cases = [
            (Duration::from_secs(86_400), "24h"),
            (Duration::from_secs(30 * 86_400), "30d"),
            (Duration::from_secs(90), "1m 30s"),
            (Duration::from_nanos(494_401_977), "494ms"),
            (Duration::from_millis(1500), "1s 500ms"),
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(10), "<1ms"),
        ];
        for (d, text) in cases {
            assert_eq!(show_duration(d), text);
            if d >= Duration::from_millis(1) {
                let back = humantime::parse_duration(text).unwrap();
                assert_eq!(back.as_millis(), d.as_millis(), "{text} reads back");
            }
        }
    }
}
