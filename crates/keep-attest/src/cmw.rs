//! RATS Conceptual Message Wrappers (CMW, draft-ietf-rats-msg-wrap) in X.509: how Keep
//! carries evidence in certificate requests and attestation results in certificates.
//!
//! The extension is `id-pe-cmw` (`1.3.6.1.5.5.7.1.35`, assigned by IANA in the PKIX
//! certificate extension arc), non-critical, with the syntax
//! `CMW ::= CHOICE { json UTF8String, cbor OCTET STRING }`. Keep writes the JSON form: a
//! *collection*, an object whose members are labelled *records* `[type, value, ind?]`, where
//! `type` is a media type, `value` the message in unpadded URL-safe base64 and `ind` says
//! what the message is (1 reference values, 2 endorsements, 4 evidence, 8 attestation
//! results). Keep's own media types are in the unregistered `x.` tree (RFC 6838 §3.4).
//!
//! The JSON is parsed by hand-written visitors rather than into a map so that a duplicated
//! label is refused instead of silently overriding the first.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use der::asn1::ObjectIdentifier;
use der::{Decode as _, Encode as _};
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::Error;

/// `id-pe-cmw`: the X.509 extension that carries a CMW.
pub const ID_PE_CMW: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.35");

/// The `ind` bit of evidence.
pub const IND_EVIDENCE: u8 = 4;
/// The `ind` bit of endorsements.
pub const IND_ENDORSEMENTS: u8 = 2;
/// The `ind` bit of attestation results.
pub const IND_ATTESTATION_RESULTS: u8 = 8;

/// Largest CMW Keep reads: a report or quote with its certificates fits many times over.
const MAX_LEN: usize = 256 * 1024;

/// One CMW record: a typed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The message's media type.
    pub media_type: String,
    /// The message.
    pub value: Vec<u8>,
    /// What kind of conceptual message it is (`IND_*` bits), when stated.
    pub ind: Option<u8>,
}

impl Record {
    /// A record of `media_type` with the `ind` bits `ind`.
    pub fn new(media_type: &str, value: Vec<u8>, ind: u8) -> Self {
        Self {
            media_type: media_type.to_owned(),
            value,
            ind: Some(ind),
        }
    }
}

/// A CMW collection: labelled records, in order, labels unique.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collection {
    entries: Vec<(String, Record)>,
}

impl Collection {
    /// Adds a record under `label` (which must not be there yet).
    pub fn push(&mut self, label: impl Into<String>, record: Record) {
        self.entries.push((label.into(), record));
    }

    /// The record labelled `label`.
    pub fn get(&self, label: &str) -> Option<&Record> {
        self.entries
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, r)| r)
    }

    /// Every record, with its label.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Record)> {
        self.entries.iter().map(|(l, r)| (l.as_str(), r))
    }

    /// The collection as JSON.
    pub fn to_json(&self) -> String {
        let members: serde_json::Map<String, serde_json::Value> = self
            .entries
            .iter()
            .map(|(label, record)| {
                let mut array = vec![
                    record.media_type.clone().into(),
                    URL_SAFE_NO_PAD.encode(&record.value).into(),
                ];
                if let Some(ind) = record.ind {
                    array.push(ind.into());
                }
                (label.clone(), serde_json::Value::Array(array))
            })
            .collect();
        serde_json::Value::Object(members).to_string()
    }

    /// Parses a JSON collection.
    pub fn from_json(json: &str) -> Result<Self, Error> {
        serde_json::from_str(json).map_err(|e| Error::malformed("CMW collection", e))
    }

    /// The DER value of an `id-pe-cmw` extension holding this collection (the `json` choice).
    pub fn to_extension_value(&self) -> Vec<u8> {
        // Encoding a UTF8String of a length that fits in memory cannot fail.
        der::asn1::Utf8StringRef::new(&self.to_json())
            .and_then(|s| s.to_der())
            .unwrap_or_default()
    }

    /// Reads the DER value of an `id-pe-cmw` extension.
    pub fn from_extension_value(der: &[u8]) -> Result<Self, Error> {
        if der.len() > MAX_LEN {
            return Err(Error::malformed(
                "CMW extension",
                format!("{} bytes, more than the {MAX_LEN} Keep reads", der.len()),
            ));
        }
        match der.first() {
            Some(0x0c) => {
                let json = der::asn1::Utf8StringRef::from_der(der)
                    .map_err(|e| Error::malformed("CMW extension", e))?;
                Self::from_json(json.as_str())
            }
            Some(0x04) => Err(Error::Unsupported {
                what: "CMW extension",
                detail: "the CBOR form (Keep reads the JSON form)".into(),
            }),
            _ => Err(Error::malformed(
                "CMW extension",
                "neither a UTF8String (JSON) nor an OCTET STRING (CBOR)",
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Collection {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CollectionVisitor;
        impl<'de> Visitor<'de> for CollectionVisitor {
            type Value = Collection;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a CMW collection (a JSON object of records)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Collection, A::Error> {
                let mut collection = Collection::default();
                while let Some(label) = map.next_key::<String>()? {
                    if label == "__cmwc_t" {
                        // The collection's type: Keep identifies its collections by their labels.
                        map.next_value::<de::IgnoredAny>()?;
                        continue;
                    }
                    if collection.get(&label).is_some() {
                        return Err(de::Error::custom(format!("label `{label}` appears twice")));
                    }
                    let record: Record = map.next_value()?;
                    collection.push(label, record);
                }
                Ok(collection)
            }
        }
        deserializer.deserialize_map(CollectionVisitor)
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RecordVisitor;
        impl<'de> Visitor<'de> for RecordVisitor {
            type Value = Record;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a CMW record [type, value, ind?]")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Record, A::Error> {
                let media_type: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::custom("a record without a type"))?;
                let value: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::custom("a record without a value"))?;
                let ind: Option<u8> = seq.next_element()?;
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom("a record with more than 3 members"));
                }
                let value = URL_SAFE_NO_PAD.decode(value.as_bytes()).map_err(|e| {
                    de::Error::custom(format!(
                        "the value of a `{media_type}` record is not unpadded URL-safe base64: {e}"
                    ))
                })?;
                Ok(Record {
                    media_type,
                    value,
                    ind,
                })
            }
        }
        deserializer.deserialize_seq(RecordVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Collection {
        let mut collection = Collection::default();
        collection.push(
            "evidence",
            Record::new("application/x.test", vec![1, 2, 255], 4),
        );
        collection.push(
            "workload",
            Record {
                media_type: "application/x.other".into(),
                value: vec![],
                ind: None,
            },
        );
        collection
    }

    #[test]
    fn round_trips_through_the_extension() {
        let collection = sample();
        let der = collection.to_extension_value();
        assert_eq!(der[0], 0x0c, "the json choice is a UTF8String");
        assert_eq!(Collection::from_extension_value(&der).unwrap(), collection);
        assert_eq!(
            collection.to_json(),
            r#"{"evidence":["application/x.test","AQL_",4],"workload":["application/x.other",""]}"#
        );
    }

    #[test]
    fn refuses_what_is_not_a_collection() {
        let cases = [
            (r#"{"a":["t","AA"],"a":["t","AA"]}"#, "appears twice"),
            (r#"{"a":["t"]}"#, "without a value"),
            (r#"{"a":["t","AA==",4]}"#, "base64"),
            (r#"{"a":["t","AA",4,5]}"#, "more than 3"),
            (r#"{"a":["t","AA",400]}"#, "invalid value"),
            (r#"["t","AA"]"#, "a CMW collection"),
        ];
        for (json, expected) in cases {
            let error = Collection::from_json(json).unwrap_err().to_string();
            assert!(error.contains(expected), "{json}: {error}");
        }
        let cbor = der::asn1::OctetString::new(vec![0x82])
            .unwrap()
            .to_der()
            .unwrap();
        assert!(
            Collection::from_extension_value(&cbor)
                .unwrap_err()
                .to_string()
                .contains("CBOR")
        );
        assert!(Collection::from_extension_value(&[0x30, 0]).is_err());
        assert!(Collection::from_extension_value(&[]).is_err());
    }
}
