//! Request parameters the way Mastodon clients send them: a form (`key[]=a&key[]=b`,
//! `poll[options][]=x`, `fields_attributes[0][name]=n`), JSON, or multipart, on every POST,
//! PUT and PATCH, with query parameters merged underneath. All three become one JSON value,
//! then the endpoint's type; the `flex` helpers read `"true"`, `"1"`, `"on"` as booleans and
//! numbers given as strings.

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::ApiError;

/// A file part of a multipart request.
#[derive(Debug)]
pub struct Upload {
    pub field: String,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub bytes: axum::body::Bytes,
}

/// The parameters of a request as `T`, with any uploaded files beside them.
#[derive(Debug)]
pub struct Params<T> {
    pub value: T,
    pub files: Vec<Upload>,
}

impl<T, S> FromRequest<S> for Params<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let mut object = Map::new();
        if let Some(query) = req.uri().query() {
            merge_pairs(&mut object, parse_form(query.as_bytes())?);
        }
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let mut files = Vec::new();
        if content_type.starts_with("multipart/form-data") {
            let mut multipart = Multipart::from_request(req, state)
                .await
                .map_err(|e| ApiError::BadRequest(format!("malformed multipart body: {e}")))?;
            let mut pairs = Vec::new();
            while let Some(field) = multipart
                .next_field()
                .await
                .map_err(|e| ApiError::BadRequest(format!("malformed multipart body: {e}")))?
            {
                let name = field.name().unwrap_or_default().to_string();
                if field.file_name().is_some() {
                    files.push(Upload {
                        field: name,
                        file_name: field.file_name().map(String::from),
                        content_type: field.content_type().map(String::from),
                        bytes: field.bytes().await.map_err(|e| {
                            ApiError::BadRequest(format!("reading an uploaded file: {e}"))
                        })?,
                    });
                } else {
                    let text = field.text().await.map_err(|e| {
                        ApiError::BadRequest(format!("malformed multipart field {name}: {e}"))
                    })?;
                    pairs.push((name, text));
                }
            }
            merge_pairs(&mut object, pairs);
        } else {
            let body = axum::body::Bytes::from_request(req, state)
                .await
                .map_err(|e| ApiError::BadRequest(format!("cannot read the body: {e}")))?;
            if content_type.starts_with("application/json") {
                if !body.is_empty() {
                    match serde_json::from_slice::<Value>(&body) {
                        Ok(Value::Object(map)) => object.extend(map),
                        Ok(_) => {
                            return Err(ApiError::BadRequest(
                                "the JSON body must be an object".into(),
                            ));
                        }
                        Err(e) => {
                            return Err(ApiError::BadRequest(format!("malformed JSON body: {e}")));
                        }
                    }
                }
            } else if !body.is_empty() {
                // Form-encoded, declared or not (some clients omit the content type).
                merge_pairs(&mut object, parse_form(&body)?);
            }
        }
        let value = serde_json::from_value(Value::Object(object))
            .map_err(|e| ApiError::Validation(e.to_string()))?;
        Ok(Params { value, files })
    }
}

fn parse_form(bytes: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_bytes(bytes)
        .map_err(|e| ApiError::BadRequest(format!("malformed form body: {e}")))
}

/// Folds `a[b][]`-style keys into nested JSON: `[]` appends to an array, `[name]` (or
/// `[0]`) selects a member. Later values of a plain key replace earlier ones.
fn merge_pairs(object: &mut Map<String, Value>, pairs: Vec<(String, String)>) {
    for (key, value) in pairs {
        let mut path: Vec<&str> = Vec::new();
        let (head, mut rest) = match key.find('[') {
            Some(i) => (&key[..i], &key[i..]),
            None => (key.as_str(), ""),
        };
        while let Some(stripped) = rest.strip_prefix('[') {
            let Some(end) = stripped.find(']') else { break };
            path.push(&stripped[..end]);
            rest = &stripped[end + 1..];
        }
        if head.is_empty() {
            continue;
        }
        insert(object, head, &path, Value::String(value));
    }
}

fn insert(object: &mut Map<String, Value>, key: &str, path: &[&str], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        object.insert(key.to_string(), value);
        return;
    };
    if first.is_empty() {
        let slot = object
            .entry(key.to_string())
            .or_insert_with(|| Value::Array(Vec::new()));
        if !slot.is_array() {
            *slot = Value::Array(Vec::new());
        }
        let array = slot.as_array_mut().expect("an array");
        if rest.is_empty() {
            array.push(value);
        } else {
            // `a[][b]`: each new `b` starts a new element unless the last one lacks it.
            let start_new = match array.last() {
                Some(Value::Object(last)) => last.contains_key(rest[0]),
                _ => true,
            };
            if start_new {
                array.push(Value::Object(Map::new()));
            }
            if let Some(Value::Object(last)) = array.last_mut() {
                insert(last, rest[0], &rest[1..], value);
            }
        }
        return;
    }
    let slot = object
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    insert(slot.as_object_mut().expect("an object"), first, rest, value);
}

/// Lenient readers for `#[serde(deserialize_with = ...)]`: forms carry only strings.
pub mod flex {
    use serde::{Deserialize, Deserializer, de::Error};
    use serde_json::Value;

    fn to_bool<E: Error>(v: Value) -> Result<bool, E> {
        match v {
            Value::Bool(b) => Ok(b),
            Value::Number(n) => Ok(n.as_i64() != Some(0)),
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" | "on" | "yes" | "t" => Ok(true),
                "false" | "0" | "off" | "no" | "f" | "" => Ok(false),
                _ => Err(E::custom(format!("{s:?} is not a boolean"))),
            },
            Value::Null => Ok(false),
            other => Err(E::custom(format!("{other} is not a boolean"))),
        }
    }

    pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        to_bool(Value::deserialize(d)?)
    }

    pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(None),
            v => to_bool(v).map(Some),
        }
    }

    pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(None),
            Value::Number(n) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("{n} is not a whole number"))),
            Value::String(s) if s.is_empty() => Ok(None),
            Value::String(s) => s
                .parse()
                .map(Some)
                .map_err(|_| D::Error::custom(format!("{s:?} is not a whole number"))),
            other => Err(D::Error::custom(format!("{other} is not a number"))),
        }
    }

    /// A list given as `key[]=a&key[]=b`, a JSON array, or a single value.
    pub fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(Vec::new()),
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(D::Error::custom(format!("{other} is not a string"))),
                })
                .collect(),
            Value::String(s) => Ok(vec![s]),
            other => Err(D::Error::custom(format!("{other} is not a list"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use serde::Deserialize;
    use serde_json::json;

    fn pairs(items: &[(&str, &str)]) -> Value {
        let mut object = Map::new();
        merge_pairs(
            &mut object,
            items
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        Value::Object(object)
    }

    #[test]
    fn bracketed_keys_become_arrays_and_objects() {
        let cases = [
            (vec![("a", "1")], json!({"a": "1"})),
            (vec![("a[]", "1"), ("a[]", "2")], json!({"a": ["1", "2"]})),
            (
                vec![
                    ("poll[options][]", "x"),
                    ("poll[options][]", "y"),
                    ("poll[expires_in]", "60"),
                ],
                json!({"poll": {"options": ["x", "y"], "expires_in": "60"}}),
            ),
            (
                vec![
                    ("fields_attributes[0][name]", "a"),
                    ("fields_attributes[0][value]", "b"),
                    ("fields_attributes[1][name]", "c"),
                ],
                json!({"fields_attributes": {"0": {"name": "a", "value": "b"}, "1": {"name": "c"}}}),
            ),
            (
                vec![("f[][name]", "a"), ("f[][value]", "b"), ("f[][name]", "c")],
                json!({"f": [{"name": "a", "value": "b"}, {"name": "c"}]}),
            ),
            (vec![("[]", "x"), ("a[", "1")], json!({"a": "1"})),
        ];
        for (input, want) in cases {
            assert_eq!(pairs(&input), want, "{input:?}");
        }
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Example {
        status: String,
        #[serde(default, deserialize_with = "flex::bool")]
        sensitive: bool,
        #[serde(default, deserialize_with = "flex::list")]
        media_ids: Vec<String>,
        #[serde(default, deserialize_with = "flex::opt_u64")]
        limit: Option<u64>,
    }

    async fn extract(
        content_type: Option<&str>,
        uri: &str,
        body: &str,
    ) -> Result<Example, ApiError> {
        let mut b = Request::builder().method("POST").uri(uri);
        if let Some(ct) = content_type {
            b = b.header(CONTENT_TYPE, ct);
        }
        let req = b.body(Body::from(body.to_string())).unwrap();
        Params::<Example>::from_request(req, &())
            .await
            .map(|p| p.value)
    }

    #[tokio::test]
    async fn form_json_and_query_give_the_same_parameters() {
        let want = Example {
            status: "hi".into(),
            sensitive: true,
            media_ids: vec!["1".into(), "2".into()],
            limit: Some(5),
        };
        let form = "status=hi&sensitive=on&media_ids[]=1&media_ids[]=2&limit=5";
        let cases = [
            (
                Some("application/x-www-form-urlencoded"),
                "/x",
                form.to_string(),
            ),
            (None, "/x", form.to_string()),
            (
                Some("application/json; charset=utf-8"),
                "/x",
                r#"{"status":"hi","sensitive":true,"media_ids":["1",2],"limit":5}"#.to_string(),
            ),
            (
                Some("application/json"),
                "/x?limit=5&sensitive=1",
                r#"{"status":"hi","media_ids":["1","2"]}"#.to_string(),
            ),
        ];
        for (ct, uri, body) in cases {
            assert_eq!(
                extract(ct, uri, &body).await.unwrap(),
                want,
                "{ct:?} {body}"
            );
        }
    }

    #[tokio::test]
    async fn bad_bodies_are_refused_with_a_reason() {
        let err = extract(Some("application/json"), "/x", "{not json")
            .await
            .unwrap_err();
        assert!(
            matches!(err, ApiError::BadRequest(ref m) if m.contains("JSON")),
            "{err}"
        );
        let err = extract(Some("application/json"), "/x", "[1]")
            .await
            .unwrap_err();
        assert!(matches!(err, ApiError::BadRequest(_)), "{err}");
        let err = extract(None, "/x", "sensitive=maybe&status=x")
            .await
            .unwrap_err();
        assert!(
            matches!(err, ApiError::Validation(ref m) if m.contains("maybe")),
            "{err}"
        );
        let err = extract(None, "/x", "sensitive=1").await.unwrap_err();
        assert!(
            matches!(err, ApiError::Validation(ref m) if m.contains("status")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn multipart_fields_and_files_are_read() {
        let body = "--B\r\nContent-Disposition: form-data; name=\"status\"\r\n\r\nhi\r\n\
                    --B\r\nContent-Disposition: form-data; name=\"media_ids[]\"\r\n\r\n7\r\n\
                    --B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\
                    Content-Type: image/png\r\n\r\nPNGDATA\r\n--B--\r\n";
        let req = Request::builder()
            .method("POST")
            .uri("/x")
            .header(CONTENT_TYPE, "multipart/form-data; boundary=B")
            .body(Body::from(body))
            .unwrap();
        let p = Params::<Example>::from_request(req, &()).await.unwrap();
        assert_eq!(p.value.status, "hi");
        assert_eq!(p.value.media_ids, ["7"]);
        assert_eq!(p.files.len(), 1);
        assert_eq!(p.files[0].file_name.as_deref(), Some("a.png"));
        assert_eq!(p.files[0].content_type.as_deref(), Some("image/png"));
        assert_eq!(&p.files[0].bytes[..], b"PNGDATA");
    }
}
