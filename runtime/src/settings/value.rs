use std::fmt;
use std::time::Duration;

/// One setting's value, as written in code (`policies!`), a TOML file or an environment
/// variable. Environment variables arrive as strings; the accessors parse them.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `true` / `false`.
    Bool(bool),
    /// A whole number.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// Text: names, durations such as `"250ms"`, and everything from the environment.
    Str(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => write!(f, "{s:?}"),
        }
    }
}

impl Value {
    /// The value as the schema's rules read it.
    pub(crate) fn raw(&self) -> sqlx_resilience_schema::Raw<'_> {
        use sqlx_resilience_schema::Raw;
        match self {
            Value::Bool(b) => Raw::Flag(*b),
            Value::Int(i) => Raw::Whole(*i),
            Value::Float(x) => Raw::Number(*x),
            Value::Str(s) => Raw::Text(s),
        }
    }

    /// A duration in humantime form (`"250ms"`, `"5s"`, `"1m 30s"`).
    pub fn as_duration(&self) -> Option<Duration> {
        match self {
            Value::Str(s) => humantime::parse_duration(s.trim()).ok(),
            _ => None,
        }
    }

    /// A whole number that fits `u32`.
    pub fn as_u32(&self) -> Option<u32> {
        match self {
            Value::Int(i) => u32::try_from(*i).ok(),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// A whole number that fits `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Int(i) => u64::try_from(*i).ok(),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// A number (whole numbers are accepted too).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(x) if x.is_finite() => Some(*x),
            Value::Str(s) => s.trim().parse::<f64>().ok().filter(|x| x.is_finite()),
            _ => None,
        }
    }

    /// `true` or `false`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::Str(s) => match s.trim() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// Text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl From<Duration> for Value {
    fn from(v: Duration) -> Self {
        Value::Str(humantime::format_duration(v).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_strings_parse() {
        assert_eq!(Value::from("200").as_u32(), Some(200));
        assert_eq!(Value::from("0.5").as_f64(), Some(0.5));
        assert_eq!(Value::from("true").as_bool(), Some(true));
        assert_eq!(
            Value::from("1m 30s").as_duration(),
            Some(Duration::from_secs(90))
        );
        assert_eq!(Value::from("-1").as_u32(), None);
        assert_eq!(Value::Int(-1).as_u32(), None);
        assert_eq!(Value::from("5 parsecs").as_duration(), None);
        assert_eq!(Value::Float(f64::NAN).as_f64(), None);
    }

    #[test]
    fn durations_round_trip() {
        let d = Duration::from_millis(1500);
        assert_eq!(Value::from(d).as_duration(), Some(d));
    }
}
