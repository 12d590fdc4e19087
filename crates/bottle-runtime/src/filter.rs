//! Which containers [`ContainerRuntime::list`](crate::ContainerRuntime::list)
//! returns, in Docker's `--filter` syntax.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// One condition of a container listing, written as Docker writes it
/// (`docker ps --filter …`). The engine applies it, with its own rules:
/// several label conditions must all hold, several name conditions are
/// alternatives (any may match), and conditions of different kinds must all
/// hold. A name condition is the engine's match on container names: on both
/// engines an unanchored regular expression (`name=web` also matches
/// `my-web-2`; anchor with `name=^web$`).
///
/// ```
/// use bottle_runtime::ContainerFilter;
///
/// let f: ContainerFilter = "label=team=infra".parse().unwrap();
/// assert_eq!(f, ContainerFilter::LabelValue("team".into(), "infra".into()));
/// assert_eq!(f.to_string(), "label=team=infra");
/// assert!("status=running".parse::<ContainerFilter>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub enum ContainerFilter {
    /// `label=KEY`: the label is set, whatever its value.
    Label(String),
    /// `label=KEY=VALUE`: the label has exactly this value.
    LabelValue(String, String),
    /// `name=PATTERN`: the container's name matches.
    Name(String),
}

impl ContainerFilter {
    /// The engine's filter key (`label`, `name`).
    pub fn key(&self) -> &'static str {
        match self {
            ContainerFilter::Label(_) | ContainerFilter::LabelValue(..) => "label",
            ContainerFilter::Name(_) => "name",
        }
    }

    /// The engine's filter value (`KEY`, `KEY=VALUE`, `PATTERN`).
    pub fn value(&self) -> String {
        match self {
            ContainerFilter::Label(k) => k.clone(),
            ContainerFilter::LabelValue(k, v) => format!("{k}={v}"),
            ContainerFilter::Name(n) => n.clone(),
        }
    }
}

impl fmt::Display for ContainerFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key(), self.value())
    }
}

impl From<ContainerFilter> for String {
    fn from(f: ContainerFilter) -> String {
        f.to_string()
    }
}

impl FromStr for ContainerFilter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}` is not KEY=VALUE (e.g. label=team, name=web)"))?;
        if value.is_empty() {
            return Err(format!("`{s}` has an empty value"));
        }
        if value.chars().any(char::is_control) {
            return Err("a filter value must not hold control characters".into());
        }
        match key {
            "label" => match value.split_once('=') {
                Some(("", _)) => Err(format!("`{s}` has an empty label name")),
                Some((k, v)) => Ok(ContainerFilter::LabelValue(k.into(), v.into())),
                None => Ok(ContainerFilter::Label(value.into())),
            },
            "name" => Ok(ContainerFilter::Name(value.into())),
            other => Err(format!(
                "unsupported filter `{other}`: use label=KEY, label=KEY=VALUE or name=NAME"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ContainerFilter::{self, *};

    #[test]
    fn parses_docker_syntax_and_prints_it_back() {
        for (text, want) in [
            ("label=a", Label("a".into())),
            ("label=a=b", LabelValue("a".into(), "b".into())),
            ("label=a=b=c", LabelValue("a".into(), "b=c".into())),
            ("label=a=", LabelValue("a".into(), String::new())),
            ("name=^web-[0-9]+$", Name("^web-[0-9]+$".into())),
        ] {
            let got: ContainerFilter = text.parse().unwrap();
            assert_eq!(got, want, "{text}");
            assert_eq!(got.to_string(), text);
        }
    }

    #[test]
    fn refuses_what_it_cannot_pass_on() {
        for bad in [
            "label",
            "label=",
            "label==x",
            "name=",
            "status=running",
            "id=abc",
            "a\nb=c",
            "name=a\x1b",
        ] {
            assert!(bad.parse::<ContainerFilter>().is_err(), "{bad:?}");
        }
    }
}
