use std::time::Duration;

use crate::value::{Raw, Typed, show_duration};

/// What one key's value must be: its type and range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rule {
    /// A duration in humantime form (`"250ms"`, `"1m 30s"`) from `min` to `max`.
    Duration {
        /// The shortest accepted (never zero).
        min: Duration,
        /// The longest accepted.
        max: Duration,
    },
    /// A whole number from `min` to `max`.
    Whole {
        /// The smallest accepted.
        min: i64,
        /// The largest accepted.
        max: i64,
    },
    /// A number (whole numbers too) up to `max`, from `min` or, with `above_min`, above it.
    Number {
        /// The lower bound.
        min: f64,
        /// The largest accepted.
        max: f64,
        /// Whether `min` itself is refused.
        above_min: bool,
    },
    /// A percentage, at most 100, from `min` or, with `above_min`, above it.
    Percent {
        /// The lower bound.
        min: f64,
        /// Whether `min` itself is refused.
        above_min: bool,
    },
    /// `true` or `false`.
    Flag,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// A PostgreSQL URL: `postgres://` or `postgresql://`.
    Url,
    /// ASCII text of at most this many bytes (PostgreSQL's `application_name`: 63).
    Ascii {
        /// The longest accepted, in bytes.
        max_len: usize,
    },
    /// Comma-separated schema names, without quotes, semicolons or backslashes (they would
    /// let a value escape the startup packet's setting).
    SchemaList,
    /// Any non-empty text naming something of this kind (`"pool"`: a pool name).
    Name(&'static str),
    /// One or more PostgreSQL URLs (`postgres://` or `postgresql://`), separated by commas
    /// or white space, or the word [`HOSTS`].
    UrlList,
}

/// Why a value does not pass its rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A value of another type (a word where a number belongs, a number for a duration).
    Type,
    /// Text that does not read as the rule's type; the reason, such as
    /// `unknown unit "parsecs"`.
    Syntax(String),
    /// Below the rule's minimum (for a duration: zero, or shorter than the minimum).
    TooSmall,
    /// Above the rule's maximum.
    TooLarge,
    /// Text the rule refuses: a choice not listed, a URL of another scheme, a character
    /// not allowed.
    NotAllowed,
}

/// What every duration rule says is expected first.
pub const DURATION_EXAMPLE: &str = "a duration such as \"250ms\" or \"5s\"";

const MS: Duration = Duration::from_millis(1);

impl Rule {
    /// A duration from 1ms up to `max`.
    pub const fn duration_to(max: Duration) -> Rule {
        Rule::Duration { min: MS, max }
    }

    /// A whole number from `min` to `max`.
    pub const fn whole(min: i64, max: i64) -> Rule {
        Rule::Whole { min, max }
    }

    /// Checks a value and returns it in the rule's type.
    pub fn parse<'a>(&self, raw: Raw<'a>) -> Result<Typed<'a>, Problem> {
        match *self {
            Rule::Duration { min, max } => {
                let Raw::Text(text) = raw else {
                    return Err(Problem::Type);
                };
                let d = humantime::parse_duration(text.trim()).map_err(|e| {
                    Problem::Syntax(match e {
                        humantime::DurationError::UnknownUnit { unit, .. } => {
                            format!("unknown unit \"{unit}\"")
                        }
                        humantime::DurationError::NumberOverflow => {
                            "the number is too large".to_owned()
                        }
                        _ => "not a number followed by a unit".to_owned(),
                    })
                })?;
                if d.is_zero() || d < min {
                    Err(Problem::TooSmall)
                } else if d > max {
                    Err(Problem::TooLarge)
                } else {
                    Ok(Typed::Duration(d))
                }
            }
            Rule::Whole { min, max } => {
                let n = match raw {
                    Raw::Whole(n) => n,
                    Raw::Text(t) => t.trim().parse().map_err(|_| Problem::Type)?,
                    _ => return Err(Problem::Type),
                };
                if n < min {
                    Err(Problem::TooSmall)
                } else if n > max {
                    Err(Problem::TooLarge)
                } else {
                    Ok(Typed::Whole(n))
                }
            }
            Rule::Number {
                min,
                max,
                above_min,
            } => bounded(number(raw)?, min, max, above_min).map(Typed::Number),
            Rule::Percent { min, above_min } => {
                bounded(number(raw)?, min, 100.0, above_min).map(Typed::Number)
            }
            Rule::Flag => match raw {
                Raw::Flag(b) => Ok(Typed::Flag(b)),
                Raw::Text(t) => match t.trim() {
                    "true" => Ok(Typed::Flag(true)),
                    "false" => Ok(Typed::Flag(false)),
                    _ => Err(Problem::Type),
                },
                _ => Err(Problem::Type),
            },
            Rule::Choice(choices) => {
                let text = text(raw)?;
                choices
                    .iter()
                    .find(|c| **c == text.trim())
                    .map(|c| Typed::Text(c))
                    .ok_or(Problem::NotAllowed)
            }
            Rule::Url => {
                let url = text(raw)?;
                // libpq's key=value form (`host=a,b port=5432 dbname=app`) is accepted too;
                // the runtime checks either form in full.
                let key_value = url.trim_start().starts_with("host") && url.contains('=');
                if url.starts_with("postgres://") || url.starts_with("postgresql://") || key_value {
                    Ok(Typed::Text(url))
                } else {
                    Err(Problem::NotAllowed)
                }
            }
            Rule::Ascii { max_len } => {
                let t = text(raw)?;
                if t.is_ascii() && t.len() <= max_len {
                    Ok(Typed::Text(t))
                } else {
                    Err(Problem::NotAllowed)
                }
            }
            Rule::SchemaList => {
                let t = text(raw)?;
                if t.contains(['\'', ';', '\\']) {
                    Err(Problem::NotAllowed)
                } else {
                    Ok(Typed::Text(t))
                }
            }
            Rule::Name(_) => {
                let t = text(raw)?;
                if t.trim().is_empty() {
                    Err(Problem::NotAllowed)
                } else {
                    Ok(Typed::Text(t))
                }
            }
            Rule::UrlList => {
                let t = text(raw)?;
                let mut urls = url_list(t).peekable();
                // Every URL of one kind: all PostgreSQL servers, or all Patroni REST APIs.
                let postgres =
                    |u: &str| u.starts_with("postgres://") || u.starts_with("postgresql://");
                let good = t.trim() == HOSTS
                    || match urls.peek().copied() {
                        None => false,
                        Some(first) if postgres(first) => urls.all(postgres),
                        Some(_) => {
                            urls.all(|u| u.starts_with("http://") || u.starts_with("https://"))
                        }
                    };
                if good {
                    Ok(Typed::Text(t))
                } else {
                    Err(Problem::NotAllowed)
                }
            }
        }
    }

    /// What a value must look like, phrased to follow "expected": `a whole number from 1 to
    /// 10000`.
    pub fn expected(&self) -> String {
        match *self {
            Rule::Duration { min, max } => format!(
                "{DURATION_EXAMPLE}, from {} to {}",
                show_duration(min),
                show_duration(max)
            ),
            Rule::Whole { min, max } => format!("a whole number from {min} to {max}"),
            Rule::Number {
                min,
                max,
                above_min: true,
            } => format!("a number above {min} and at most {max}"),
            Rule::Number { min, max, .. } => format!("a number from {min} to {max}"),
            Rule::Percent {
                min,
                above_min: true,
            } => format!("a percentage above {min} and at most 100, such as 50"),
            Rule::Percent { min, .. } => format!("a percentage from {min} to 100"),
            Rule::Flag => "`true` or `false`".to_owned(),
            Rule::Choice(choices) => format!("one of {}", quoted(choices, "\"")),
            Rule::Url => "a PostgreSQL URL such as \"postgres://app@db.internal/app\" (or libpq's \"host=a,b port=5432 dbname=app\")".to_owned(),
            Rule::Ascii { max_len } => format!("ASCII text of at most {max_len} bytes"),
            Rule::SchemaList => {
                "a comma-separated list of schema names, such as \"app, public\"".to_owned()
            }
            Rule::Name(of) => format!("a {of} name"),
            Rule::UrlList => "PostgreSQL URLs separated by commas, such as \
                 \"postgres://app@replica1/app, postgres://app@replica2/app\", \"hosts\", or the \
                 URLs of a Patroni cluster's REST API, such as \"http://10.0.0.1:8008, \
                 http://10.0.0.2:8008\""
                .to_owned(),
        }
    }

    /// The rule in a few words, for tables: `duration, 1ms..=24h`, `whole number, 1..=10000`.
    pub fn summary(&self) -> String {
        match *self {
            Rule::Duration { min, max } => {
                format!("duration, {}..={}", show_duration(min), show_duration(max))
            }
            Rule::Whole { min, max } => format!("whole number, {min}..={max}"),
            Rule::Number {
                min,
                max,
                above_min: true,
            } => format!("number above {min}, ..={max}"),
            Rule::Number { min, max, .. } => format!("number, {min}..={max}"),
            Rule::Percent {
                min,
                above_min: true,
            } => format!("percentage above {min}, ..=100"),
            Rule::Percent { min, .. } => format!("percentage, {min}..=100"),
            Rule::Flag => "`true` or `false`".to_owned(),
            Rule::Choice(choices) => quoted(choices, "`\""),
            Rule::Url => "`postgres://` URL".to_owned(),
            Rule::Ascii { max_len } => format!("ASCII text, at most {max_len} bytes"),
            Rule::SchemaList => "schema names, comma-separated".to_owned(),
            Rule::Name(of) => format!("{of} name"),
            Rule::UrlList => {
                "`postgres://` URLs, comma-separated, `\"hosts\"`, or Patroni's `http://` REST API URLs"
                    .to_owned()
            }
        }
    }
}

/// The [`Rule::UrlList`] value that names no URL: every host of the pool's own multi-host
/// URL, each a candidate replica while it is in recovery.
pub const HOSTS: &str = "hosts";

/// The URLs of a [`Rule::UrlList`] value, in order.
pub fn url_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|u| !u.is_empty())
}

fn number(raw: Raw<'_>) -> Result<f64, Problem> {
    let x = match raw {
        Raw::Whole(n) => n as f64,
        Raw::Number(x) => x,
        Raw::Text(t) => t.trim().parse().map_err(|_| Problem::Type)?,
        Raw::Flag(_) => return Err(Problem::Type),
    };
    if x.is_finite() {
        Ok(x)
    } else {
        Err(Problem::Type)
    }
}

fn bounded(x: f64, min: f64, max: f64, above_min: bool) -> Result<f64, Problem> {
    if x < min || (above_min && x == min) {
        Err(Problem::TooSmall)
    } else if x > max {
        Err(Problem::TooLarge)
    } else {
        Ok(x)
    }
}

fn text(raw: Raw<'_>) -> Result<&str, Problem> {
    match raw {
        Raw::Text(t) => Ok(t),
        _ => Err(Problem::Type),
    }
}

/// `"a", "b"`, with the given quote around each word.
fn quoted(words: &[&str], quote: &str) -> String {
    let close: String = quote.chars().rev().collect();
    words
        .iter()
        .map(|w| format!("{quote}{w}{close}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_checks_type_and_range() {
        let hour = Rule::duration_to(Duration::from_secs(3600));
        assert_eq!(
            hour.parse(Raw::Text(" 1m 30s ")),
            Ok(Typed::Duration(Duration::from_secs(90)))
        );
        assert_eq!(hour.parse(Raw::Text("0s")), Err(Problem::TooSmall));
        assert_eq!(hour.parse(Raw::Text("2h")), Err(Problem::TooLarge));
        assert_eq!(hour.parse(Raw::Whole(5)), Err(Problem::Type));
        assert_eq!(
            hour.parse(Raw::Text("5 parsecs")),
            Err(Problem::Syntax("unknown unit \"parsecs\"".into()))
        );

        let count = Rule::whole(1, 100);
        assert_eq!(count.parse(Raw::Text("7")), Ok(Typed::Whole(7)));
        assert_eq!(count.parse(Raw::Whole(0)), Err(Problem::TooSmall));
        assert_eq!(count.parse(Raw::Number(1.5)), Err(Problem::Type));

        let rate = Rule::Number {
            min: 0.0,
            max: 10.0,
            above_min: true,
        };
        assert_eq!(rate.parse(Raw::Whole(0)), Err(Problem::TooSmall));
        assert_eq!(rate.parse(Raw::Text("0.5")), Ok(Typed::Number(0.5)));
        assert_eq!(rate.parse(Raw::Number(f64::NAN)), Err(Problem::Type));

        assert_eq!(Rule::Flag.parse(Raw::Text("true")), Ok(Typed::Flag(true)));
        assert_eq!(Rule::Flag.parse(Raw::Text("yes")), Err(Problem::Type));
        let choice = Rule::Choice(&["eager", "lazy"]);
        assert_eq!(choice.parse(Raw::Text("lazy ")), Ok(Typed::Text("lazy")));
        assert_eq!(choice.parse(Raw::Text("soon")), Err(Problem::NotAllowed));
        assert_eq!(
            Rule::Url.parse(Raw::Text("mysql://x")),
            Err(Problem::NotAllowed)
        );
        assert_eq!(
            Rule::SchemaList.parse(Raw::Text("a; drop")),
            Err(Problem::NotAllowed)
        );
        let list = Rule::UrlList;
        assert_eq!(
            list.parse(Raw::Text("postgres://a/d, postgresql://b/d")),
            Ok(Typed::Text("postgres://a/d, postgresql://b/d"))
        );
        assert_eq!(
            list.parse(Raw::Text("postgres://a:1,b:2/d")),
            Err(Problem::NotAllowed)
        );
        assert_eq!(list.parse(Raw::Text(" , ")), Err(Problem::NotAllowed));
        assert_eq!(list.parse(Raw::Text("hosts")), Ok(Typed::Text("hosts")));
        assert_eq!(
            list.parse(Raw::Text("http://a:8008, http://b:8008")),
            Ok(Typed::Text("http://a:8008, http://b:8008"))
        );
        assert_eq!(
            list.parse(Raw::Text("http://a:8008, postgres://b/d")),
            Err(Problem::NotAllowed)
        );
        assert_eq!(
            list.parse(Raw::Text("hosts, postgres://a/d")),
            Err(Problem::NotAllowed)
        );
        assert_eq!(
            Rule::Ascii { max_len: 3 }.parse(Raw::Text("abcd")),
            Err(Problem::NotAllowed)
        );
    }

    #[test]
    fn descriptions_name_type_and_range() {
        let day = Rule::duration_to(Duration::from_secs(86_400));
        assert_eq!(
            day.expected(),
            "a duration such as \"250ms\" or \"5s\", from 1ms to 24h"
        );
        assert_eq!(day.summary(), "duration, 1ms..=24h");
        assert_eq!(
            Rule::Number {
                min: 1.0,
                max: 10.0,
                above_min: false
            }
            .expected(),
            "a number from 1 to 10"
        );
        assert_eq!(
            Rule::Choice(&["full", "equal"]).expected(),
            "one of \"full\", \"equal\""
        );
        assert_eq!(
            Rule::Choice(&["full", "equal"]).summary(),
            "`\"full\"`, `\"equal\"`"
        );
    }
}
