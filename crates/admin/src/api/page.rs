//! Server-side pagination, the same for every list endpoint: `offset` and
//! `limit` in, `total`, `offset` and `limit` out beside the items.

use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiError;

/// Default page size.
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page size a client may ask for.
pub const MAX_LIMIT: i64 = 500;

/// Where a page sits in the whole list.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Page {
    /// Items matching the filters, in all pages.
    pub total: i64,
    pub offset: i64,
    pub limit: i64,
}

/// `offset` and `limit` as the client sent them.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageParams {
    pub offset: Option<i64>,
    pub limit: Option<i64>,
}

/// Checked paging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub offset: i64,
    pub limit: i64,
}

impl PageParams {
    pub fn resolve(self) -> Result<Paging, ApiError> {
        let offset = self.offset.unwrap_or(0);
        if offset < 0 {
            return Err(ApiError::invalid("offset", "offset: must not be negative"));
        }
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid(
                "limit",
                format!("limit: must be 1-{MAX_LIMIT}"),
            ));
        }
        Ok(Paging { offset, limit })
    }
}
