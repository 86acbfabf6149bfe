//! Errors of the evaluation API and their one mapping to each transport:
//! gRPC status codes, Connect error codes and HTTP statuses.
//!
//! The mapping of evaluation errors follows flagd (wire contract §1.5) and is
//! pinned by the table test below.

use ensign_engine::ErrorCode;

/// The status codes the evaluation API answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// A bad request: type mismatch, bad selector, undecodable message.
    InvalidArgument,
    /// The flag does not exist (or, on evaluation.v1, has no default).
    NotFound,
    /// The flag's configuration cannot be evaluated.
    DataLoss,
    /// Any other evaluation failure.
    Unknown,
    /// The request body is over the limit.
    ResourceExhausted,
    /// The service or method does not exist.
    Unimplemented,
    /// A stream reached the server's deadline.
    DeadlineExceeded,
    /// The server is shutting down.
    Unavailable,
    /// No valid token (`--evaluation-auth-token`).
    Unauthenticated,
}

impl Code {
    /// The gRPC status code.
    pub fn grpc(self) -> tonic::Code {
        match self {
            Code::InvalidArgument => tonic::Code::InvalidArgument,
            Code::NotFound => tonic::Code::NotFound,
            Code::DataLoss => tonic::Code::DataLoss,
            Code::Unknown => tonic::Code::Unknown,
            Code::ResourceExhausted => tonic::Code::ResourceExhausted,
            Code::Unimplemented => tonic::Code::Unimplemented,
            Code::DeadlineExceeded => tonic::Code::DeadlineExceeded,
            Code::Unavailable => tonic::Code::Unavailable,
            Code::Unauthenticated => tonic::Code::Unauthenticated,
        }
    }

    /// The Connect protocol's name for the code.
    pub fn connect(self) -> &'static str {
        match self {
            Code::InvalidArgument => "invalid_argument",
            Code::NotFound => "not_found",
            Code::DataLoss => "data_loss",
            Code::Unknown => "unknown",
            Code::ResourceExhausted => "resource_exhausted",
            Code::Unimplemented => "unimplemented",
            Code::DeadlineExceeded => "deadline_exceeded",
            Code::Unavailable => "unavailable",
            Code::Unauthenticated => "unauthenticated",
        }
    }

    /// The HTTP status of a Connect unary error.
    pub fn http(self) -> http::StatusCode {
        match self {
            Code::InvalidArgument => http::StatusCode::BAD_REQUEST,
            Code::NotFound => http::StatusCode::NOT_FOUND,
            Code::DataLoss | Code::Unknown => http::StatusCode::INTERNAL_SERVER_ERROR,
            Code::ResourceExhausted => http::StatusCode::TOO_MANY_REQUESTS,
            Code::Unimplemented => http::StatusCode::NOT_IMPLEMENTED,
            Code::DeadlineExceeded => http::StatusCode::GATEWAY_TIMEOUT,
            Code::Unavailable => http::StatusCode::SERVICE_UNAVAILABLE,
            Code::Unauthenticated => http::StatusCode::UNAUTHORIZED,
        }
    }
}

/// An error answer of the evaluation API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The status code.
    pub code: Code,
    /// What went wrong.
    pub message: String,
}

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// The answer to an evaluation that failed with `error`.
    pub fn from_evaluation(error: ErrorCode, message: &str) -> Self {
        let code = match error {
            ErrorCode::FlagNotFound => Code::NotFound,
            ErrorCode::TypeMismatch | ErrorCode::InvalidContext => Code::InvalidArgument,
            ErrorCode::ParseError => Code::DataLoss,
            ErrorCode::General => Code::Unknown,
        };
        ApiError::new(code, message)
    }

    /// The answer to a request the port's token guard refused: UNAUTHENTICATED,
    /// or RESOURCE_EXHAUSTED for a throttled client address.
    pub fn from_refusal(refusal: ensign_http::Refusal) -> Self {
        let code = match refusal {
            ensign_http::Refusal::Unauthenticated => Code::Unauthenticated,
            ensign_http::Refusal::Throttled { .. } => Code::ResourceExhausted,
        };
        ApiError::new(code, refusal.message())
    }

    /// As a gRPC status.
    pub fn to_status(&self) -> tonic::Status {
        tonic::Status::new(self.code.grpc(), self.message.clone())
    }

    /// As the Connect error body `{"code", "message"}`.
    pub fn to_connect_json(&self) -> serde_json::Value {
        serde_json::json!({"code": self.code.connect(), "message": self.message})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluation_errors_map_as_flagd_maps_them() {
        let table = [
            (
                ErrorCode::FlagNotFound,
                tonic::Code::NotFound,
                "not_found",
                404,
            ),
            (
                ErrorCode::TypeMismatch,
                tonic::Code::InvalidArgument,
                "invalid_argument",
                400,
            ),
            (
                ErrorCode::ParseError,
                tonic::Code::DataLoss,
                "data_loss",
                500,
            ),
            (ErrorCode::General, tonic::Code::Unknown, "unknown", 500),
            (
                ErrorCode::InvalidContext,
                tonic::Code::InvalidArgument,
                "invalid_argument",
                400,
            ),
        ];
        for (error, grpc, connect, http) in table {
            let api = ApiError::from_evaluation(error, "m");
            assert_eq!(api.code.grpc(), grpc, "{error}");
            assert_eq!(api.code.connect(), connect, "{error}");
            assert_eq!(api.code.http().as_u16(), http, "{error}");
        }
    }

    #[test]
    fn transport_errors_map_to_connect_statuses() {
        let table = [
            (Code::ResourceExhausted, 429),
            (Code::Unimplemented, 501),
            (Code::DeadlineExceeded, 504),
            (Code::Unavailable, 503),
            (Code::Unauthenticated, 401),
        ];
        for (code, http) in table {
            assert_eq!(code.http().as_u16(), http, "{code:?}");
        }
        let unauthenticated = ApiError::from_refusal(ensign_http::Refusal::Unauthenticated);
        assert_eq!(unauthenticated.code.grpc(), tonic::Code::Unauthenticated);
        assert_eq!(unauthenticated.code.connect(), "unauthenticated");
        let throttled = ApiError::from_refusal(ensign_http::Refusal::Throttled {
            retry_after: std::time::Duration::from_secs(5),
        });
        assert_eq!(throttled.code.grpc(), tonic::Code::ResourceExhausted);
        assert_eq!(throttled.code.http().as_u16(), 429);
    }
}
