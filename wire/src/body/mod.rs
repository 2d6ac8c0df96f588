//! JSON bodies, shaped like the Java classes of the same names.
//!
//! Field names, member order (alphabetical, as fastjson writes) and value types follow the Java
//! side. Decoders accept what real clients send: fastjson's bare map keys, enums as names or
//! ordinals, numbers as strings (the C++ client), missing members (defaults). Encoders write
//! standard JSON ([`JsonBody::encode`]) or fastjson's form with bare integer keys
//! ([`JsonBody::encode_fastjson`]) where the Java name server does.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::BodyError;

mod admin;
mod client;
pub mod fastjson;
mod lenient;
mod register;
mod route;

pub use admin::*;
pub use client::*;
pub use register::*;
pub use route::*;

/// A body that travels as JSON.
pub trait JsonBody: Serialize + DeserializeOwned {
    /// The Java class name, for error messages.
    const NAME: &'static str;

    fn decode(body: &[u8]) -> Result<Self, BodyError> {
        if !fastjson::is_object(body) {
            return Err(BodyError::Invalid { body: Self::NAME, reason: "not a JSON object".into() });
        }
        let json = fastjson::normalize_keys(body);
        serde_json::from_slice(&json).map_err(|source| BodyError::Json { body: Self::NAME, source })
    }

    /// Standard JSON: every map key quoted.
    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// fastjson's form: integer map keys bare.
    fn encode_fastjson(&self) -> Vec<u8> {
        fastjson::to_vec_fastjson(self)
    }
}

macro_rules! json_body {
    ($($t:ident),* $(,)?) => {$(
        impl $crate::body::JsonBody for $t {
            const NAME: &'static str = stringify!($t);
        }
    )*};
}
pub(crate) use json_body;
