//! flagd's wire types and gRPC service stubs, generated at build time from the
//! `.proto` files in `proto/` (written from the wire contract) with protox, so a
//! machine with only cargo builds them.
//!
//! Only the server crates use these types; the engine never sees them.

pub mod convert;

/// `flagd.evaluation.v1`: the evaluation service most SDKs call.
#[allow(missing_docs, clippy::all)]
pub mod evaluation_v1 {
    tonic::include_proto!("flagd.evaluation.v1");
}

/// `flagd.evaluation.v2`: optional value and variant, no ResolveAll.
#[allow(missing_docs, clippy::all)]
pub mod evaluation_v2 {
    tonic::include_proto!("flagd.evaluation.v2");
}

/// `schema.v1`: the deprecated evaluation service older SDKs call.
#[allow(missing_docs, clippy::all)]
pub mod schema_v1 {
    tonic::include_proto!("schema.v1");
}

/// `flagd.sync.v1`: the sync service of in-process providers.
#[allow(missing_docs, clippy::all)]
pub mod sync_v1 {
    tonic::include_proto!("flagd.sync.v1");
}
