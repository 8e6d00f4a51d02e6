//! The page size every list operation takes (ARCHITECTURE §5): absent means
//! [`DEFAULT_PAGE`], otherwise 1 to [`MAX_PAGE`], else 422 naming `limit`.

use crate::ServiceError;

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 100;

/// The problem a `limit` outside the range reports.
pub fn out_of_range() -> ServiceError {
    ServiceError::invalid("limit", &format!("must be between 1 and {MAX_PAGE}"))
}

/// The page size a request asks for, checked.
pub fn page_size(requested: Option<u32>) -> Result<u32, ServiceError> {
    match requested.unwrap_or(DEFAULT_PAGE) {
        n @ 1..=MAX_PAGE => Ok(n),
        _ => Err(out_of_range()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(page_size(None).unwrap(), DEFAULT_PAGE);
        assert_eq!(page_size(Some(1)).unwrap(), 1);
        assert_eq!(page_size(Some(MAX_PAGE)).unwrap(), MAX_PAGE);
        assert_eq!(page_size(Some(0)).unwrap_err().code, crate::ErrorCode::Unprocessable);
        assert_eq!(page_size(Some(MAX_PAGE + 1)).unwrap_err().code, crate::ErrorCode::Unprocessable);
    }
}
