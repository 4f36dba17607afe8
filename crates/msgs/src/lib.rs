//! bicameral's messages: the types that cross zenoh between the robot, System 2, System 1 and
//! the executor, their msgpack wire codec and the key expressions they travel on. No I/O.
//!
//! * Every message starts with a [`Header`]: schema version, message kind, sequence number,
//!   stamp (ns on the sending node's clock) and robot id.
//! * The wire format is msgpack with named fields ([`encode`], [`decode`]), so any msgpack
//!   library reads it (PROTOCOL.md has a Python example). Decoding checks the schema version
//!   and the kind before the body, then validates shapes ([`Message::validate`]); arbitrary
//!   bytes give an error, never a panic.
//! * Tensors ([`Tensor`]) travel as little-endian bytes with a dtype and a shape.
//! * Key expressions: [`keys`].
//!
//! Units: joint positions in rad (m for prismatic joints), velocities in rad/s (m/s), efforts in
//! N·m (N), times in ns. Joint vectors are in the embodiment's action order
//! (`robots/*/embodiment.toml`).

mod codec;
pub mod keys;
mod messages;
mod tensor;

pub use codec::{Message, MsgError, decode, encode, encode_into, peek_header};
pub use messages::*;
pub use tensor::{DType, Tensor};

/// The schema version this build reads and writes. A message with another version is refused
/// with [`MsgError::Version`].
pub const SCHEMA_VERSION: u16 = 1;
