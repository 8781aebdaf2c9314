//! Query strings read as the Durable Functions extension reads them: names compared
//! without regard to case, values trimmed and URL-decoded, and a value that does not
//! parse (a flag that is neither `true` nor `false`, a date that is not a date, a `top`
//! that is not a number) treated as absent rather than refused.

use crate::store::RuntimeStatus;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// The parsed query string of one request.
#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

/// What a `runtimeStatus` filter asks for.
#[derive(Debug, PartialEq)]
pub enum Statuses {
    /// No usable filter: every status.
    Any,
    /// These statuses; empty when only statuses Weft never has (`Canceled`,
    /// `ContinuedAsNew`) were asked for, which selects nothing.
    Only(Vec<RuntimeStatus>),
}

impl Query {
    pub fn parse(query: Option<&str>) -> Self {
        let pairs = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
            .collect();
        Self { pairs }
    }

    /// The first value of `name`, compared without regard to case.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.all(name).into_iter().next()
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// A boolean flag: `true`/`false` in any case; anything else is absent.
    pub fn flag(&self, name: &str) -> Option<bool> {
        let value = self.get(name)?;
        if value.eq_ignore_ascii_case("true") {
            Some(true)
        } else if value.eq_ignore_ascii_case("false") {
            Some(false)
        } else {
            None
        }
    }

    /// A time in one of the ISO 8601 forms clients send; anything else is absent.
    pub fn time(&self, name: &str) -> Option<DateTime<Utc>> {
        parse_time(self.get(name)?)
    }

    /// A whole number; anything else is absent.
    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name)?.parse().ok()
    }

    /// A number of seconds (fractions allowed), finite and not negative.
    pub fn seconds(&self, name: &str) -> Option<f64> {
        self.get(name)?
            .parse::<f64>()
            .ok()
            .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
    }

    /// `runtimeStatus`, a comma-separated list that may also be repeated. Names the
    /// extension knows are read by name or number; unknown ones are dropped silently.
    pub fn statuses(&self) -> Statuses {
        let mut known = false;
        let mut statuses = Vec::new();
        for item in self
            .all("runtimeStatus")
            .into_iter()
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            let parsed = match item {
                "0" => Some(Some(RuntimeStatus::Running)),
                "1" => Some(Some(RuntimeStatus::Completed)),
                "3" => Some(Some(RuntimeStatus::Failed)),
                "5" => Some(Some(RuntimeStatus::Terminated)),
                "6" => Some(Some(RuntimeStatus::Pending)),
                "7" => Some(Some(RuntimeStatus::Suspended)),
                "2" | "4" => Some(None),
                name if name.eq_ignore_ascii_case("ContinuedAsNew")
                    || name.eq_ignore_ascii_case("Canceled") =>
                {
                    Some(None)
                }
                name => RuntimeStatus::parse(name).map(Some),
            };
            if let Some(status) = parsed {
                known = true;
                if let Some(status) = status
                    && !statuses.contains(&status)
                {
                    statuses.push(status);
                }
            }
        }
        if known {
            Statuses::Only(statuses)
        } else {
            Statuses::Any
        }
    }
}

/// `2026-01-01`, `2026-01-01T00:00:00`, with or without fractions and a zone (`Z`,
/// `+02:00`). A time without a zone is UTC.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return Some(time.and_utc());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|time| time.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ignore_case_and_bad_values_are_absent() {
        let query = Query::parse(Some(
            "showHistory=True&SHOWINPUT=false&top=abc&returnInternalServerErrorOnFailure=yes",
        ));
        assert_eq!(query.flag("showhistory"), Some(true));
        assert_eq!(query.flag("showInput"), Some(false));
        assert_eq!(query.int("top"), None);
        assert_eq!(query.flag("returnInternalServerErrorOnFailure"), None);
        assert_eq!(query.flag("missing"), None);
    }

    #[test]
    fn statuses_drop_unknown_names_and_keep_foreign_ones_as_nothing() {
        let list = |q: &str| Query::parse(Some(q)).statuses();
        assert_eq!(list(""), Statuses::Any);
        assert_eq!(list("runtimeStatus=Sleeping"), Statuses::Any);
        assert_eq!(
            list("runtimeStatus=Running,Sleeping&runtimeStatus=5"),
            Statuses::Only(vec![RuntimeStatus::Running, RuntimeStatus::Terminated])
        );
        assert_eq!(list("runtimeStatus=Canceled"), Statuses::Only(vec![]));
    }

    #[test]
    fn times_in_the_forms_clients_send() {
        let expected = "2026-01-02T03:04:05Z".parse::<DateTime<Utc>>().ok();
        for text in [
            "2026-01-02T03:04:05Z",
            "2026-01-02T03:04:05.000Z",
            "2026-01-02T03:04:05.000000Z",
            "2026-01-02T03:04:05",
            "2026-01-02T05:04:05+02:00",
        ] {
            assert_eq!(parse_time(text), expected, "{text}");
        }
        assert!(parse_time("2026-01-02").is_some());
        assert_eq!(parse_time("yesterday"), None);
        // `+` in a query is a space: a zone written `+02:00` unencoded is not a time.
        assert_eq!(
            Query::parse(Some("t=2026-01-02T05:04:05+02:00")).time("t"),
            None
        );
    }
}
