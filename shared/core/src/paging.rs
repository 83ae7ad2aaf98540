//! Lists are paged the same way everywhere: `?limit=1..200` (default 50) and `?cursor=` with
//! the previous page's `nextCursor`; an empty cursor is the first page, an empty limit is
//! refused.

use serde_json::{Value as Json, json};

use crate::error::Error;
use crate::form;

/// Most entries one page returns.
pub const MAX_PAGE: usize = 200;
/// Entries per page when the caller does not say.
pub const DEFAULT_PAGE: usize = 50;

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The entries.
    pub items: Vec<T>,
    /// The cursor of the next page.
    pub next: Option<u64>,
}

impl<T> Page<T> {
    /// The page as the API shows it: `{"items": [...], "nextCursor": "N" | null}`.
    pub fn to_json(&self, view: impl Fn(&T) -> Json) -> Json {
        json!({
            "items": self.items.iter().map(view).collect::<Vec<_>>(),
            "nextCursor": self.next.map(|n| n.to_string()),
        })
    }
}

/// A page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// Where the previous page ended (`None`: the first page).
    pub cursor: Option<u64>,
    /// Entries wanted.
    pub limit: usize,
}

impl Paging {
    /// Reads `cursor` and `limit` from a query string; a bad one is a 400 naming it.
    pub fn from_query(query: &str) -> Result<Paging, Error> {
        let cursor = match form::param(query, "cursor").filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(c.parse().map_err(|_| {
                Error::malformed(
                    "bad_query",
                    "cursor",
                    "use the nextCursor of the previous page",
                )
            })?),
        };
        // An empty `limit=` is a mistake worth naming, unlike an empty cursor (the first page).
        let limit = match form::param(query, "limit") {
            None => DEFAULT_PAGE,
            Some(l) => match l.parse::<usize>() {
                Ok(n @ 1..=MAX_PAGE) => n,
                _ => {
                    return Err(Error::malformed(
                        "bad_query",
                        "limit",
                        format!("a whole number from 1 to {MAX_PAGE}"),
                    ));
                }
            },
        };
        Ok(Paging { cursor, limit })
    }

    /// The cursor as "after this slot" (0 for the first page).
    pub fn after(&self) -> u64 {
        self.cursor.unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_and_limits_are_read_or_refused_by_name() {
        assert_eq!(
            Paging::from_query("").unwrap(),
            Paging {
                cursor: None,
                limit: 50
            }
        );
        assert_eq!(
            Paging::from_query("cursor=&limit=7").unwrap(),
            Paging {
                cursor: None,
                limit: 7
            }
        );
        assert_eq!(Paging::from_query("cursor=12").unwrap().after(), 12);
        let e = Paging::from_query("limit=201").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("limit"));
        let e = Paging::from_query("cursor=96667&limit=").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("limit"));
        let e = Paging::from_query("cursor=x").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("cursor"));
    }
}
