//! `registryAuths`: the shapes of SPEC §6, checked without ever echoing a value.
//!
//! Values that hold `${VAR}` are checked when the run expands them; literal values are
//! checked here (base64 `user:password`, or JSON). Messages name the registry and the field,
//! never the credential.

use super::Decoder;
use super::keys::Keys;
use crate::auth::{check_config_json, check_encoded, decode_basic};
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

#[cfg(test)]
mod tests {
    use super::super::with_node;
    use super::*;

    #[test]
    fn every_shape_and_no_value_in_messages() {
        let (a, errors) = with_node(
            "ghcr.io: {username: me, password: hunter2}\ngcr.io: {auth: \"bWU6aHVudGVyMg==\"}\nquay.io: \"${QUAY}\"\n",
            decode,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert!(matches!(a, Some(RegistryAuths::PerRegistry(ref v)) if v.len() == 3));
        let (_, errors) = with_node("ghcr.io: {username: me}\n", decode);
        assert!(errors[0].contains("no `password`"), "{errors:?}");
        let (_, errors) = with_node("ghcr.io: not-base64-s3cret\n", decode);
        assert_eq!(errors.len(), 1);
        assert!(!errors[0].contains("s3cret"), "{errors:?}");
    }
}
