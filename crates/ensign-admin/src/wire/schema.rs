//! OpenAPI schemas the derive cannot state: values the server checks as
//! plain strings and maps (flag states, metadata, variants) and the sign-in
//! body's two shapes. Each says exactly what the storage and the engine
//! accept, so a client (or a schema-driven fuzzer) reading the document
//! builds requests the server takes.

use utoipa::openapi::schema::{AdditionalProperties, OneOfBuilder, Schema};
use utoipa::openapi::{ObjectBuilder, RefOr, Type};

/// A flag's state: `ENABLED` or `DISABLED`.
pub(super) fn flag_state() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["ENABLED", "DISABLED"]))
        .description(Some("`ENABLED` or `DISABLED`"))
        .build()
        .into()
}

/// A metadata value: a string, a number or a boolean (no arrays, objects or
/// `null`).
fn metadata_value() -> Schema {
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String))
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .build()
        .into()
}

/// Metadata: names → strings, numbers or booleans.
fn metadata_object() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::RefOr(
            RefOr::T(metadata_value()),
        )))
        .description(Some("Name → string, number or boolean"))
        .examples([serde_json::json!({"team": "checkout", "tier": 1})])
}

/// Metadata (absent: none).
pub(super) fn metadata() -> Schema {
    metadata_object().build().into()
}

/// Metadata to replace the old with (absent or `null`: unchanged).
pub(super) fn optional_metadata() -> Schema {
    metadata_object()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::Object,
            Type::Null,
        ]))
        .build()
        .into()
}

/// Variants: at least one name → value (every value of one type: booleans,
/// strings, numbers or objects).
pub(super) fn variants() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .min_properties(Some(1))
        .description(Some(
            "Variant name → value; at least one, every value of one type",
        ))
        .examples([serde_json::json!({"on": true, "off": false})])
        .build()
        .into()
}

/// The sign-in body: `{"token"}` or `{"username", "password"}`, nothing else.
pub(super) fn login_request() -> RefOr<Schema> {
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let token = ObjectBuilder::new()
        .title(Some("Token"))
        .property(
            "token",
            string().description(Some("An API token's secret, or the bootstrap token")),
        )
        .required("token")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .examples([serde_json::json!({"token": "<an API token>"})]);
    let password = ObjectBuilder::new()
        .title(Some("Password"))
        .property("username", string().description(Some("A user's name")))
        .property(
            "password",
            string().description(Some("The user's password")),
        )
        .required("username")
        .required("password")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .examples([
            serde_json::json!({"username": "ada@example.com", "password": "correct horse battery"}),
        ]);
    RefOr::T(
        OneOfBuilder::new()
            .item(token)
            .item(password)
            .description(Some(
                "An API token (or the bootstrap token), or a user's name and password",
            ))
            .build()
            .into(),
    )
}
