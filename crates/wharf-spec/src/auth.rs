//! Registry credentials as text: base64 `user:password`, a JSON object, a Docker auth
//! config. Decoding `registryAuths` from a DAG file is in `decode::auth`.

/// `user:password` from base64 (standard or URL alphabet, padding optional).
pub fn decode_basic(text: &str) -> Option<(String, String)> {
    let bytes = base64_decode(text.trim())?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    (!user.is_empty()).then(|| (user.to_owned(), password.to_owned()))
}

pub(crate) fn check_encoded(text: &str) -> Result<(), ()> {
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(trimmed).map_err(|_| ())?;
        let has = |k: &str| value.get(k).and_then(|v| v.as_str()).is_some();
        return if (has("username") && has("password")) || has("auth") {
            Ok(())
        } else {
            Err(())
        };
    }
    decode_basic(trimmed).map(|_| ()).ok_or(())
}

pub(crate) fn check_config_json(text: &str) -> Result<(), &'static str> {
    let value: serde_json::Value =
        serde_json::from_str(text.trim()).map_err(|_| "it is not valid JSON")?;
    match value.get("auths") {
        Some(serde_json::Value::Object(_)) => Ok(()),
        _ => Err("it has no `auths` object"),
    }
}

/// Base64 in either alphabet (standard or URL), padded or not.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let text = text.trim_end_matches('=');
    STANDARD_NO_PAD
        .decode(text)
        .or_else(|_| URL_SAFE_NO_PAD.decode(text))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_decodes() {
        // "user:pa:ss" in base64.
        assert_eq!(
            decode_basic("dXNlcjpwYTpzcw=="),
            Some(("user".into(), "pa:ss".into()))
        );
        assert_eq!(decode_basic("not base64!"), None);
    }

    #[test]
    fn json_shapes() {
        assert!(check_encoded(r#"{"username": "AWS", "password": "x"}"#).is_ok());
        assert!(check_encoded(r#"{"user": "AWS"}"#).is_err());
        assert!(check_config_json(r#"{"auths": {}}"#).is_ok());
        assert!(check_config_json("{}").is_err());
    }
}
