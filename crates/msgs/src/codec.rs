//! msgpack wire codec with a schema-version and kind check.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Header, SCHEMA_VERSION};

/// Why a message could not be encoded, decoded or accepted.
#[derive(Debug, thiserror::Error)]
pub enum MsgError {
    /// The bytes are not msgpack of the expected shape.
    #[error("{kind}: not a valid msgpack message: {message}")]
    Decode {
        /// The message type that was expected.
        kind: &'static str,
        /// What the decoder reported.
        message: String,
    },
    /// Serialization failed (only for values serde cannot represent).
    #[error("{kind}: encode failed: {message}")]
    Encode {
        /// The message type.
        kind: &'static str,
        /// What the encoder reported.
        message: String,
    },
    /// The sender speaks another schema version.
    #[error("{kind}: schema version {got}, this build speaks {expected}")]
    Version {
        /// The message type that was expected.
        kind: &'static str,
        /// Version in the message header.
        got: u16,
        /// [`SCHEMA_VERSION`].
        expected: u16,
    },
    /// The header names another message type.
    #[error("expected a `{expected}` message, got a `{got}`")]
    WrongKind {
        /// The message type that was expected.
        expected: &'static str,
        /// Kind in the header.
        got: String,
    },
    /// A field's value is malformed (shape mismatch, empty, out of range).
    #[error("field `{field}`: {problem}")]
    Invalid {
        /// Field name.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

impl MsgError {
    pub(crate) fn invalid(field: &'static str, problem: impl Into<String>) -> Self {
        MsgError::Invalid {
            field,
            problem: problem.into(),
        }
    }
}

/// A message type: its wire kind, its header, and its structural checks.
pub trait Message: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Kind string carried in [`Header::kind`] (e.g. `"joint_state"`).
    const KIND: &'static str;

    /// The header.
    fn header(&self) -> &Header;

    /// The header, mutably (publishers fill `seq` and `stamp_ns`).
    fn header_mut(&mut self) -> &mut Header;

    /// Structural checks beyond what the types enforce (lengths, shapes). Values (NaN, limits)
    /// are the safety layer's business, not the codec's.
    fn validate(&self) -> Result<(), MsgError>;
}

/// Encodes a message as msgpack with named fields (a map per struct).
pub fn encode<M: Message>(message: &M) -> Result<Vec<u8>, MsgError> {
    let mut out = Vec::with_capacity(256);
    encode_into(message, &mut out)?;
    Ok(out)
}

/// Encodes into `out` (appended).
pub fn encode_into<M: Message>(message: &M, out: &mut Vec<u8>) -> Result<(), MsgError> {
    let mut ser = rmp_serde::Serializer::new(out).with_struct_map();
    message.serialize(&mut ser).map_err(|e| MsgError::Encode {
        kind: M::KIND,
        message: e.to_string(),
    })
}

#[derive(serde::Deserialize)]
struct Peek {
    header: PeekHeader,
}

#[derive(serde::Deserialize)]
struct PeekHeader {
    schema: u16,
    kind: String,
}

/// Reads only the schema version and kind of an encoded message.
pub fn peek_header(bytes: &[u8]) -> Result<(u16, String), MsgError> {
    let peek: Peek = rmp_serde::from_slice(bytes).map_err(|e| MsgError::Decode {
        kind: "message",
        message: e.to_string(),
    })?;
    Ok((peek.header.schema, peek.header.kind))
}

/// Decodes a message: checks the schema version and kind first (so a message from another
/// version gets a version error, not a confusing field error), then the body, then
/// [`Message::validate`].
pub fn decode<M: Message>(bytes: &[u8]) -> Result<M, MsgError> {
    let (schema, kind) = peek_header(bytes).map_err(|e| match e {
        MsgError::Decode { message, .. } => MsgError::Decode {
            kind: M::KIND,
            message,
        },
        other => other,
    })?;
    if schema != SCHEMA_VERSION {
        return Err(MsgError::Version {
            kind: M::KIND,
            got: schema,
            expected: SCHEMA_VERSION,
        });
    }
    if kind != M::KIND {
        return Err(MsgError::WrongKind {
            expected: M::KIND,
            got: kind,
        });
    }
    let message: M = rmp_serde::from_slice(bytes).map_err(|e| MsgError::Decode {
        kind: M::KIND,
        message: e.to_string(),
    })?;
    message.validate()?;
    Ok(message)
}
