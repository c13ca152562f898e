//! Searching, filtering, sorting and paging the customer list (manual
//! chapter 3: "Filtering the List", "Sorting the List", "Searching the
//! List"), applied in Rust to the rows [`crate::Store::customer_list`]
//! returns: at the manual's scale (1000 customers, 3000 systems) that is
//! cheaper than building SQL per request, and it compares text the same
//! way on both databases.
//!
//! - Search: a case-insensitive substring of any text of the customer
//!   (id, name, reseller, provider, service user, tags, phone, email,
//!   address, notes), of any of its systems (name, label, kind, profile,
//!   version, agent version) or of its connectivity message. Never the
//!   service password, which the rows do not hold.
//! - Filters, all of which must match: reseller, provider, tag (one of the
//!   customer's tags), version (the version of any of its systems, so that
//!   a dashboard's "software release" finds the networks running it),
//!   state and colour (the customer's connectivity), action (the
//!   customer's action icon: in_progress, completed, failed). Text filters
//!   ignore case; an empty value is no filter.
//! - Sort: one column of [`SortColumn`], ascending or descending; text in
//!   natural order ("cust2" before "cust10", "9.1" before "11.0"), case
//!   ignored; ties always by id, ascending, so that pages never overlap.
//! - Page: `offset`, and `limit` (50 unless given, at most 500).

use std::cmp::Ordering;

use serde::Serialize;

use crate::connectivity::{Colour, State};
use crate::store::CustomerListRow;
use tunnel_proto::report::ActionState;

/// Rows per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest `limit`.
pub const MAX_LIMIT: usize = 500;

/// The columns the list sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortColumn {
    #[default]
    Id,
    Name,
    Reseller,
    Provider,
    /// The primary system's name (or the first system's).
    System,
    /// The primary system's profile (or the first system's).
    Profile,
    /// The primary system's version (or the first system's).
    Version,
    /// All alarms of the customer's systems.
    Alarms,
    /// Green, amber, red; then by state.
    Connectivity,
}

impl SortColumn {
    pub const ALL: [SortColumn; 9] = [
        SortColumn::Id,
        SortColumn::Name,
        SortColumn::Reseller,
        SortColumn::Provider,
        SortColumn::System,
        SortColumn::Profile,
        SortColumn::Version,
        SortColumn::Alarms,
        SortColumn::Connectivity,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SortColumn::Id => "id",
            SortColumn::Name => "name",
            SortColumn::Reseller => "reseller",
            SortColumn::Provider => "provider",
            SortColumn::System => "system",
            SortColumn::Profile => "profile",
            SortColumn::Version => "version",
            SortColumn::Alarms => "alarms",
            SortColumn::Connectivity => "connectivity",
        }
    }

    pub fn parse(s: &str) -> Option<SortColumn> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    Asc,
    Desc,
}

/// One column and a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sort {
    pub column: SortColumn,
    pub direction: Direction,
}

/// The filters; `None` is no filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub reseller: Option<String>,
    pub provider: Option<String>,
    pub tag: Option<String>,
    pub version: Option<String>,
    pub state: Option<State>,
    pub colour: Option<Colour>,
    pub action: Option<ActionState>,
}

/// A search, filters, a sort and a page of the customer list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    pub search: Option<String>,
    pub filters: Filters,
    pub sort: Sort,
    pub offset: usize,
    pub limit: usize,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            search: None,
            filters: Filters::default(),
            sort: Sort::default(),
            offset: 0,
            limit: DEFAULT_LIMIT,
        }
    }
}

/// One page of the list, and how many rows matched in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page<T> {
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    pub items: Vec<T>,
}

/// A query parameter that is not understood; `parameter` names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{parameter}: {reason}")]
pub struct QueryError {
    pub parameter: String,
    pub reason: String,
}

/// The parameters [`ListQuery::from_pairs`] understands.
pub const PARAMETERS: [&str; 12] = [
    "search", "reseller", "provider", "tag", "version", "state", "colour", "action", "sort",
    "order", "offset", "limit",
];

fn error(parameter: &str, reason: impl Into<String>) -> QueryError {
    QueryError {
        parameter: parameter.to_owned(),
        reason: reason.into(),
    }
}

fn parse_colour(s: &str) -> Option<Colour> {
    match s {
        "green" => Some(Colour::Green),
        "amber" => Some(Colour::Amber),
        "red" => Some(Colour::Red),
        _ => None,
    }
}

fn colour_rank(colour: Colour) -> u8 {
    match colour {
        Colour::Green => 0,
        Colour::Amber => 1,
        Colour::Red => 2,
    }
}

impl ListQuery {
    /// Reads a query from query-string pairs (already percent-decoded):
    /// `search` (or `q`), `reseller`, `provider`, `tag`, `version`,
    /// `state`, `colour` (or `color`), `action`, `sort`, `order` (`asc`, `desc`),
    /// `offset`, `limit`. An unknown parameter, one given twice, or a bad
    /// value is an error naming the parameter (and, for a choice, the
    /// values allowed).
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<ListQuery, QueryError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut query = ListQuery::default();
        let mut seen: Vec<&'static str> = Vec::new();
        for (key, value) in pairs {
            let key = key.as_ref();
            let value = value.as_ref().trim();
            let name: &'static str = match key {
                "q" => "search",
                "color" => "colour",
                other => PARAMETERS
                    .into_iter()
                    .find(|p| *p == other)
                    .ok_or_else(|| {
                        error(
                            other,
                            format!("unknown parameter; allowed: {}", PARAMETERS.join(", ")),
                        )
                    })?,
            };
            if seen.contains(&name) {
                return Err(error(key, "given more than once"));
            }
            seen.push(name);
            let text = (!value.is_empty()).then(|| value.to_owned());
            match name {
                "search" => query.search = text,
                "reseller" => query.filters.reseller = text,
                "provider" => query.filters.provider = text,
                "tag" => query.filters.tag = text,
                "version" => query.filters.version = text,
                "state" => {
                    query.filters.state = match text {
                        None => None,
                        Some(s) => Some(State::parse(&s).ok_or_else(|| {
                            let allowed: Vec<&str> =
                                State::ALL.iter().map(|s| s.as_str()).collect();
                            error(
                                key,
                                format!("unknown state {s:?}; allowed: {}", allowed.join(", ")),
                            )
                        })?),
                    }
                }
                "colour" => {
                    query.filters.colour = match text {
                        None => None,
                        Some(s) => Some(parse_colour(&s).ok_or_else(|| {
                            error(
                                key,
                                format!("unknown colour {s:?}; allowed: green, amber, red"),
                            )
                        })?),
                    }
                }
                "action" => {
                    query.filters.action = match text {
                        None => None,
                        Some(s) => Some(ActionState::parse(&s).ok_or_else(|| {
                            error(
                                key,
                                format!(
                                    "unknown action {s:?}; allowed: in_progress, completed, failed"
                                ),
                            )
                        })?),
                    }
                }
                "sort" => {
                    query.sort.column = SortColumn::parse(value).ok_or_else(|| {
                        let allowed: Vec<&str> =
                            SortColumn::ALL.iter().map(|c| c.as_str()).collect();
                        error(
                            key,
                            format!("unknown column {value:?}; allowed: {}", allowed.join(", ")),
                        )
                    })?
                }
                "order" => {
                    query.sort.direction = match value {
                        "asc" => Direction::Asc,
                        "desc" => Direction::Desc,
                        _ => {
                            return Err(error(
                                key,
                                format!("unknown order {value:?}; allowed: asc, desc"),
                            ))
                        }
                    }
                }
                "offset" => {
                    query.offset = value
                        .parse()
                        .map_err(|_| error(key, "must be a whole number, 0 or more"))?
                }
                "limit" => {
                    query.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| error(key, "must be a whole number from 1 to 500"))?
                }
                _ => unreachable!("every parameter is handled"),
            }
        }
        Ok(query)
    }

    /// Whether `row` passes the search and every filter.
    pub fn matches(&self, row: &CustomerListRow) -> bool {
        let f = &self.filters;
        let customer = &row.details.customer;
        let settings = &row.details.settings;
        let eq = |value: &str, wanted: &Option<String>| {
            wanted
                .as_deref()
                .is_none_or(|w| value.to_lowercase() == w.to_lowercase())
        };
        if !eq(&customer.reseller, &f.reseller) {
            return false;
        }
        if let Some(provider) = &f.provider {
            let Some(actual) = &customer.provider else {
                return false;
            };
            if actual.to_lowercase() != provider.to_lowercase() {
                return false;
            }
        }
        if let Some(tag) = &f.tag {
            let tag = tag.to_lowercase();
            if !settings.tags.iter().any(|t| t.to_lowercase() == tag) {
                return false;
            }
        }
        if let Some(version) = &f.version {
            let version = version.to_lowercase();
            if !row
                .systems
                .iter()
                .any(|s| s.version.to_lowercase() == version)
            {
                return false;
            }
        }
        if f.state.is_some_and(|state| row.connectivity.state != state) {
            return false;
        }
        if f.colour
            .is_some_and(|colour| row.connectivity.colour != colour)
        {
            return false;
        }
        if f.action.is_some_and(|action| row.action() != Some(action)) {
            return false;
        }
        match &self.search {
            None => true,
            Some(needle) => searches(row, &needle.to_lowercase()),
        }
    }

    /// The page of `rows` (as the store lists them) this query asks for.
    pub fn apply(&self, rows: &[CustomerListRow]) -> Page<CustomerListRow> {
        let mut matching: Vec<&CustomerListRow> = rows.iter().filter(|r| self.matches(r)).collect();
        let sort = self.sort;
        matching.sort_by(|a, b| {
            let by_column = compare(sort.column, a, b);
            let by_column = match sort.direction {
                Direction::Asc => by_column,
                Direction::Desc => by_column.reverse(),
            };
            by_column.then_with(|| a.id().cmp(b.id()))
        });
        Page {
            total: matching.len(),
            offset: self.offset,
            limit: self.limit,
            items: matching
                .into_iter()
                .skip(self.offset)
                .take(self.limit)
                .cloned()
                .collect(),
        }
    }
}

/// Whether `haystack` contains `needle` (already lowercase), ignoring case.
fn contains_ci(haystack: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if haystack.is_ascii() && needle.is_ascii() {
        let (h, n) = (haystack.as_bytes(), needle.as_bytes());
        return h.len() >= n.len() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    }
    haystack.to_lowercase().contains(needle)
}

/// Whether any text of the row contains `needle` (lowercase).
fn searches(row: &CustomerListRow, needle: &str) -> bool {
    let customer = &row.details.customer;
    let settings = &row.details.settings;
    let customer_texts = [
        customer.id.as_str(),
        &customer.name,
        &customer.reseller,
        customer.provider.as_deref().unwrap_or(""),
        &settings.service_user,
        &settings.phone,
        &settings.email,
        &settings.address,
        &settings.notes,
        &row.connectivity.message,
    ];
    customer_texts.iter().any(|t| contains_ci(t, needle))
        || settings.tags.iter().any(|t| contains_ci(t, needle))
        || row.systems.iter().any(|s| {
            [
                s.name.as_str(),
                &s.status.label,
                s.kind.as_str(),
                &s.profile,
                &s.version,
                s.status.agent_version.as_deref().unwrap_or(""),
            ]
            .iter()
            .any(|t| contains_ci(t, needle))
        })
}

/// The system a per-system column shows: the primary, else the first.
fn shown_system(row: &CustomerListRow) -> Option<&crate::store::ListedSystem> {
    row.primary().or_else(|| row.systems.first())
}

fn compare(column: SortColumn, a: &CustomerListRow, b: &CustomerListRow) -> Ordering {
    let (ca, cb) = (&a.details.customer, &b.details.customer);
    let system_text = |row: &CustomerListRow, field: fn(&crate::store::ListedSystem) -> &str| {
        shown_system(row).map(field).unwrap_or("").to_owned()
    };
    match column {
        SortColumn::Id => natural_cmp(&ca.id, &cb.id),
        SortColumn::Name => natural_cmp(&ca.name, &cb.name),
        SortColumn::Reseller => natural_cmp(&ca.reseller, &cb.reseller),
        SortColumn::Provider => natural_cmp(
            ca.provider.as_deref().unwrap_or(""),
            cb.provider.as_deref().unwrap_or(""),
        ),
        SortColumn::System => natural_cmp(
            &system_text(a, |s| s.name.as_str()),
            &system_text(b, |s| s.name.as_str()),
        ),
        SortColumn::Profile => natural_cmp(
            &system_text(a, |s| s.profile.as_str()),
            &system_text(b, |s| s.profile.as_str()),
        ),
        SortColumn::Version => natural_cmp(
            &system_text(a, |s| s.version.as_str()),
            &system_text(b, |s| s.version.as_str()),
        ),
        SortColumn::Alarms => a.alarms.cmp(&b.alarms),
        SortColumn::Connectivity => {
            let key = |r: &CustomerListRow| {
                (
                    colour_rank(r.connectivity.colour),
                    r.connectivity.state.as_str(),
                )
            };
            key(a).cmp(&key(b))
        }
    }
}

/// Natural order, case ignored: runs of digits compare as numbers ("2" <
/// "10", "9.1" < "11.0"), the rest character by character, lowercase.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let mut a = a.chars().peekable();
    let mut b = b.chars().peekable();
    loop {
        match (a.peek().copied(), b.peek().copied()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let take_number = |it: &mut std::iter::Peekable<std::str::Chars<'_>>| {
                    let mut digits = String::new();
                    while let Some(&c) = it.peek().filter(|c| c.is_ascii_digit()) {
                        digits.push(c);
                        it.next();
                    }
                    digits
                };
                let (na, nb) = (take_number(&mut a), take_number(&mut b));
                let (ta, tb) = (na.trim_start_matches('0'), nb.trim_start_matches('0'));
                let by_value = ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb));
                if by_value != Ordering::Equal {
                    return by_value;
                }
            }
            (Some(x), Some(y)) => {
                let by_char = x.to_lowercase().cmp(y.to_lowercase());
                if by_char != Ordering::Equal {
                    return by_char;
                }
                a.next();
                b.next();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_compares_numbers_as_numbers_and_ignores_case() {
        let mut names = vec![
            "cust10", "Cust2", "cust1", "11.0", "9.1", "9.10", "9.2", "b", "A",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            ["9.1", "9.2", "9.10", "11.0", "A", "b", "cust1", "Cust2", "cust10"]
        );
        assert_eq!(natural_cmp("a007", "a7"), Ordering::Equal);
        assert_eq!(natural_cmp("", "a"), Ordering::Less);
    }

    #[test]
    fn case_insensitive_contains() {
        assert!(contains_ci("IP Office Main", "office"));
        assert!(contains_ci("Ärger GmbH", "ärger"));
        assert!(!contains_ci("abc", "abcd"));
        assert!(contains_ci("abc", ""));
    }

    #[test]
    fn pairs_are_parsed_with_defaults() {
        let q = ListQuery::from_pairs([
            ("q", " Main "),
            ("reseller", "R1"),
            ("provider", ""),
            ("tag", "gold"),
            ("version", "11.1"),
            ("state", "offline"),
            ("color", "red"),
            ("action", "In_Progress"),
            ("sort", "version"),
            ("order", "desc"),
            ("offset", "100"),
            ("limit", "500"),
        ])
        .unwrap();
        assert_eq!(
            q,
            ListQuery {
                search: Some("Main".into()),
                filters: Filters {
                    reseller: Some("R1".into()),
                    provider: None,
                    tag: Some("gold".into()),
                    version: Some("11.1".into()),
                    state: Some(State::Offline),
                    colour: Some(Colour::Red),
                    action: Some(ActionState::InProgress),
                },
                sort: Sort {
                    column: SortColumn::Version,
                    direction: Direction::Desc,
                },
                offset: 100,
                limit: 500,
            }
        );
        let none: [(&str, &str); 0] = [];
        assert_eq!(ListQuery::from_pairs(none).unwrap(), ListQuery::default());
        assert_eq!(ListQuery::default().limit, 50);
    }

    #[test]
    fn bad_parameters_are_named() {
        let err =
            |pairs: &[(&str, &str)]| ListQuery::from_pairs(pairs.iter().copied()).unwrap_err();

        let e = err(&[("sort", "bogus")]);
        assert_eq!(e.parameter, "sort");
        assert_eq!(
            e.to_string(),
            "sort: unknown column \"bogus\"; allowed: id, name, reseller, provider, system, \
             profile, version, alarms, connectivity"
        );
        let e = err(&[("order", "up")]);
        assert_eq!(e.parameter, "order");
        assert!(e.reason.contains("asc, desc"), "{e}");
        for limit in ["0", "501", "-1", "x", ""] {
            let e = err(&[("limit", limit)]);
            assert_eq!(e.parameter, "limit", "{limit}");
            assert!(e.reason.contains("1 to 500"), "{e}");
        }
        assert_eq!(err(&[("offset", "-3")]).parameter, "offset");
        let e = err(&[("state", "purple")]);
        assert_eq!(e.parameter, "state");
        assert!(e.reason.contains("offline"), "{e}");
        let e = err(&[("colour", "blue")]);
        assert!(e.reason.contains("green, amber, red"), "{e}");
        let e = err(&[("action", "paused")]);
        assert_eq!(e.parameter, "action");
        assert!(e.reason.contains("in_progress, completed, failed"), "{e}");
        let e = err(&[("password", "x")]);
        assert_eq!(e.parameter, "password");
        assert!(e.reason.starts_with("unknown parameter"), "{e}");
        let e = err(&[("tag", "a"), ("tag", "b")]);
        assert_eq!(e.to_string(), "tag: given more than once");
        let e = err(&[("q", "a"), ("search", "b")]);
        assert_eq!(e.parameter, "search");
    }
}
