//! `registryAuths`: the shapes of SPEC §6, checked without ever echoing a value.
//!
//! Values that hold `${VAR}` are checked when the run expands them; literal values are
//! checked here (base64 `user:password`, or JSON). Messages name the registry and the field,
//! never the credential.

use crate::decode::{Decoder, Keys};
use crate::diag::Diagnostic;
use crate::model::{RegistryAuth, RegistryAuths};
use crate::yaml::{Kind, Node};

const KEYS: Keys = Keys {
    known: &["username", "password", "auth"],
    ignored: &[],
    unsupported: &[],
};

pub(crate) fn decode(d: &mut Decoder, node: &Node) -> Option<RegistryAuths> {
    match &node.kind {
        Kind::Scalar(_) => {
            let text = d.string(node, "`registryAuths`")?;
            if !text.contains('$')
                && let Err(why) = check_config_json(&text)
            {
                d.diags.push(
                        Diagnostic::error(node.at(), format!("`registryAuths` is not a Docker auth config: {why}"))
                            .with_help("write {\"auths\": {\"REGISTRY\": {\"auth\": \"...\"}}}, a mapping of registries, or ${DOCKER_AUTH_CONFIG}"),
                    );
            }
            Some(RegistryAuths::Config(text))
        }
        Kind::Map(entries) => {
            let mut out = Vec::new();
            for entry in entries {
                let Some(registry) = entry.key.as_str().map(str::to_owned) else {
                    d.error(
                        entry.key.span,
                        "a registry in `registryAuths` has an empty name",
                    );
                    continue;
                };
                let what = format!("the credentials of `{registry}`");
                let auth = match &entry.value.kind {
                    Kind::Map(_) => {
                        let Some(f) = d.fields(&entry.value, &what, &KEYS) else {
                            continue;
                        };
                        let username = d.opt_string(&f, "username");
                        let password = d.opt_string(&f, "password");
                        let auth = d.opt_string(&f, "auth");
                        match (username, password, auth) {
                            (Some(username), Some(password), None) => {
                                RegistryAuth::UserPassword { username, password }
                            }
                            (None, None, Some(auth)) => {
                                if !auth.contains('$') && decode_basic(&auth).is_none() {
                                    let at = f.get("auth").map_or(entry.value.at(), |n| n.at());
                                    d.error(at, format!("`auth` of `{registry}` is not base64 of `username:password`"));
                                }
                                RegistryAuth::Auth(auth)
                            }
                            (Some(_), None, None) => {
                                d.error(
                                    entry.value.at(),
                                    format!("{what} have a `username` but no `password`"),
                                );
                                continue;
                            }
                            (None, Some(_), None) => {
                                d.error(
                                    entry.value.at(),
                                    format!("{what} have a `password` but no `username`"),
                                );
                                continue;
                            }
                            (None, None, None) => {
                                d.error(
                                    entry.value.at(),
                                    format!("{what} need `username` and `password`, or `auth`"),
                                );
                                continue;
                            }
                            _ => {
                                d.error(
                                    entry.value.at(),
                                    format!(
                                        "{what} take `username` and `password`, or `auth`, not both"
                                    ),
                                );
                                continue;
                            }
                        }
                    }
                    Kind::Scalar(_) => {
                        let Some(text) = d.string(&entry.value, &what) else {
                            continue;
                        };
                        if !text.contains('$') && check_encoded(&text).is_err() {
                            d.error(
                                entry.value.at(),
                                format!("{what} are neither base64 of `username:password` nor a JSON object with `username` and `password` (or `auth`)"),
                            );
                        }
                        RegistryAuth::Encoded(text)
                    }
                    Kind::Seq(_) => {
                        d.error(
                            entry.value.at(),
                            format!("{what} must be a mapping or a string, found a list"),
                        );
                        continue;
                    }
                };
                out.push((registry, auth));
            }
            Some(RegistryAuths::PerRegistry(out))
        }
        Kind::Seq(_) => {
            d.error(node.at(), "`registryAuths` must be a mapping of registries or a Docker auth config string, found a list");
            None
        }
    }
}

/// `user:password` from base64 (standard or URL alphabet, padding optional).
pub fn decode_basic(text: &str) -> Option<(String, String)> {
    let bytes = base64_decode(text.trim())?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    (!user.is_empty()).then(|| (user.to_owned(), password.to_owned()))
}

fn check_encoded(text: &str) -> Result<(), ()> {
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

fn check_config_json(text: &str) -> Result<(), &'static str> {
    let value: serde_json::Value =
        serde_json::from_str(text.trim()).map_err(|_| "it is not valid JSON")?;
    match value.get("auths") {
        Some(serde_json::Value::Object(_)) => Ok(()),
        _ => Err("it has no `auths` object"),
    }
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
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
