//! List paging: `?limit=` (default 50, at most 500) and an opaque `?cursor=`;
//! responses are `{"items": [...], "next_cursor": "..."|null}`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::error::ApiError;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;

/// The page size: the default when absent, at most [`MAX_LIMIT`] (larger
/// requests get the largest page, as "max 500" promises); zero is refused.
pub fn limit(requested: Option<usize>) -> Result<usize, ApiError> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(0) => Err(ApiError::invalid_fields([("limit", "must be at least 1")])),
        Some(limit) => Ok(limit.min(MAX_LIMIT)),
    }
}

/// Makes an opaque cursor from a position string.
pub fn encode_cursor(position: &str) -> String {
    URL_SAFE_NO_PAD.encode(position)
}

/// Reads a cursor back into its position string.
pub fn decode_cursor(cursor: Option<&str>) -> Result<Option<String>, ApiError> {
    cursor
        .map(|cursor| {
            URL_SAFE_NO_PAD
                .decode(cursor)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| ApiError::invalid_fields([("cursor", "is not a cursor this API issued")]))
        })
        .transpose()
}

#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` fetched items: the extra one only tells
    /// that there is more, and the cursor points after the last one kept.
    pub fn from_overfetch(mut items: Vec<T>, limit: usize, position_of: impl Fn(&T) -> String) -> Self {
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = if more { items.last().map(|item| encode_cursor(&position_of(item))) } else { None };
        Self { items, next_cursor }
    }
}

/// `?limit=&cursor=` for lists that take no filters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

impl ListQuery {
    /// For lists ordered by id: the id (of the list's kind) to continue
    /// after, and the limit.
    pub fn id_page<Id: std::str::FromStr>(&self) -> Result<(Option<Id>, usize), ApiError> {
        let limit = limit(self.limit)?;
        let after = decode_cursor(self.cursor.as_deref())?
            .map(|position| {
                position.parse().map_err(|_| ApiError::invalid_fields([("cursor", "is not a cursor this API issued")]))
            })
            .transpose()?;
        Ok((after, limit))
    }
}
