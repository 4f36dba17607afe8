//! Order-preserving JSON: LeRobot's files list keys in a meaningful order (features = column and
//! camera order), while `serde_json::Value` maps sort their keys.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

/// A JSON tree whose objects keep insertion order when serialized.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Oj {
    /// A leaf (or a sub-tree whose key order does not matter).
    V(Value),
    /// An object, keys in this order.
    O(Vec<(String, Oj)>),
}

impl Oj {
    pub(crate) fn obj<K: Into<String>>(entries: impl IntoIterator<Item = (K, Oj)>) -> Oj {
        Oj::O(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
    pub(crate) fn v(v: impl Into<Value>) -> Oj {
        Oj::V(v.into())
    }
}

impl Serialize for Oj {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Oj::V(v) => v.serialize(s),
            Oj::O(o) => {
                let mut map = s.serialize_map(Some(o.len()))?;
                for (k, v) in o {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// A JSON object read with its keys in document order (values as plain `Value`s).
#[derive(Debug, Clone, Default)]
pub(crate) struct OrderedObject(pub Vec<(String, Value)>);

impl<'de> Deserialize<'de> for OrderedObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<OrderedObject, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(OrderedObject(out))
            }
        }
        d.deserialize_map(V)
    }
}
