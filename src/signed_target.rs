//! Where the relay's own signed calls go (outgoing events, the before-publish hook): a backend
//! URL and the secret that signs for it, read from the environment by the same rules for both.

/// A backend URL and its signing secret. Not `Debug`: it holds the secret.
#[derive(Clone)]
pub struct SignedTarget {
    pub url: String,
    pub secret: String,
}

impl SignedTarget {
    /// The target that `url_var` and `secret_var` name (`text` reads a variable, empty as
    /// unset): `Ok(None)` when `url_var` is unset, `Err` with the reason for the log (never
    /// the secret) when it is set but cannot be used. These calls carry the rooms' messages:
    /// https only, as for identity-provider keys (plain http to a loopback address is for
    /// local development and tests).
    pub fn from_vars(
        text: &impl Fn(&str) -> Option<String>,
        url_var: &str,
        secret_var: &str,
    ) -> Result<Option<SignedTarget>, String> {
        let Some(url) = text(url_var) else {
            return Ok(None);
        };
        if !crate::jwks::url_allowed(&url) {
            return Err(format!(
                "{url_var} is not used: it must be an https URL without credentials"
            ));
        }
        match text(secret_var) {
            Some(secret) => Ok(Some(SignedTarget { url, secret })),
            None => Err(format!("{url_var} is not used: {secret_var} is not set")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<Option<SignedTarget>, String> {
        let text = |name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        };
        SignedTarget::from_vars(&text, "X_URL", "X_SECRET")
    }

    #[test]
    fn a_target_needs_an_allowed_url_and_a_secret() {
        assert!(matches!(read(&[]), Ok(None)));
        assert!(matches!(read(&[("X_SECRET", "s")]), Ok(None)));
        let target = read(&[("X_URL", "https://b.example/x"), ("X_SECRET", "s3")])
            .unwrap()
            .unwrap();
        assert_eq!(
            (target.url.as_str(), target.secret.as_str()),
            ("https://b.example/x", "s3")
        );
        let loopback = read(&[("X_URL", "http://127.0.0.1:9/x"), ("X_SECRET", "s")]);
        assert!(
            matches!(loopback, Ok(Some(_))),
            "plain http to loopback is for tests"
        );
    }

    #[test]
    fn an_unusable_target_says_why_without_the_secret() {
        let plain = read(&[("X_URL", "http://b.example/x"), ("X_SECRET", "hunter2")]);
        let why = plain.err().unwrap();
        assert!(why.contains("X_URL") && why.contains("https") && !why.contains("hunter2"));
        let creds = read(&[("X_URL", "https://u:p@b.example/x"), ("X_SECRET", "s")]);
        assert!(creds.is_err());
        let no_secret = read(&[("X_URL", "https://b.example/x")]).err().unwrap();
        assert!(no_secret.contains("X_SECRET is not set"));
    }
}
