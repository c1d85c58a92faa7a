//! JSON read strictly where the gateway and the next hop must agree on what a message says: an
//! object with the same key twice is refused, at any depth. (Parsers differ on which of two
//! values wins; `{"name":"a","name":"b"}` must not be one tool to the gateway and another to the
//! server behind it.)

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Deepest nesting accepted (serde_json's own recursion limit is 128 too).
const MAX_DEPTH: usize = 128;

/// Parses one JSON value, refusing any object that repeats a key.
pub fn from_slice_unique_keys(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = Unique { depth: 0 }.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

#[derive(Clone, Copy)]
struct Unique {
    depth: usize,
}

impl Unique {
    fn deeper<E: de::Error>(self) -> Result<Unique, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom("JSON nested too deeply"));
        }
        Ok(Unique { depth: self.depth + 1 })
    }
}

impl<'de> DeserializeSeed<'de> for Unique {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Unique {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.deeper()?;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.deeper()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key `{}`",
                    key.chars().take(64).collect::<String>()
                )));
            }
            let value = map.next_value_seed(inner)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_key_is_refused_at_any_depth() {
        for doc in [
            r#"{"name":"slow_count","name":"add"}"#,
            r#"{"params":{"name":"a","arguments":{},"name":"b"}}"#,
            r#"[{"a":1},{"b":{"c":1,"c":1}}]"#,
        ] {
            let error = from_slice_unique_keys(doc.as_bytes()).unwrap_err();
            assert!(error.to_string().contains("duplicate key"), "{doc}: {error}");
        }
    }

    #[test]
    fn distinct_keys_parse_as_serde_json_does() {
        let doc = br#"{"a":[1,-2,3.5,"x",null,true,{"b":{}}],"c":{"d":"\u00e9"},"e":18446744073709551615}"#;
        assert_eq!(from_slice_unique_keys(doc).unwrap(), serde_json::from_slice::<Value>(doc).unwrap());
    }

    #[test]
    fn trailing_bytes_and_deep_nesting_are_refused() {
        assert!(from_slice_unique_keys(b"{} x").is_err());
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(from_slice_unique_keys(deep.as_bytes()).is_err());
    }
}
