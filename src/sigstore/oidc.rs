//! OIDC identity tokens for keyless signing: given explicitly, or GitHub Actions' ambient
//! credentials.

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Where the token comes from, in the order wharf tries them.
#[derive(Debug, Clone, Default)]
pub struct TokenSource {
    /// `--identity-token` or `SIGSTORE_ID_TOKEN`: the token, or a path to a file holding it.
    pub explicit: Option<String>,
    /// The audience to ask GitHub for.
    pub audience: String,
}

/// The claims wharf reads (Fulcio checks the signature; wharf only needs to know what to prove).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub email: Option<String>,
}

impl Claims {
    /// What the proof of possession signs: `email` when the token has one, else `sub`.
    pub fn proof_subject(&self) -> &str {
        self.email.as_deref().unwrap_or(&self.sub)
    }
}

pub fn decode_claims(token: &str) -> Result<Claims> {
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| anyhow!("the identity token is not a JWT"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| anyhow!("the identity token's payload is not base64url"))?;
    serde_json::from_slice(&bytes).context("the identity token has no iss/sub claims")
}

impl TokenSource {
    pub async fn fetch(&self, http: &reqwest::Client) -> Result<String> {
        if let Some(value) = &self.explicit {
            let path = std::path::Path::new(value);
            if !value.contains('.') || path.is_file() {
                let text = crate::files::read_bounded_text(
                    path,
                    crate::files::SECRET_LIMIT,
                    "identity token file",
                )?;
                return Ok(text.trim().to_string());
            }
            return Ok(value.trim().to_string());
        }
        let (Ok(url), Ok(request_token)) = (
            std::env::var("ACTIONS_ID_TOKEN_REQUEST_URL"),
            std::env::var("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
        ) else {
            bail!(
                "keyless signing needs an OIDC identity token: run in GitHub Actions with \
                 `permissions: id-token: write`, or pass --identity-token (or SIGSTORE_ID_TOKEN); \
                 to sign with a key, pass --key"
            );
        };
        let mut url =
            reqwest::Url::parse(&url).context("ACTIONS_ID_TOKEN_REQUEST_URL is not a URL")?;
        url.query_pairs_mut()
            .append_pair("audience", &self.audience);
        let response = http
            .get(url)
            .bearer_auth(request_token)
            .send()
            .await
            .context("cannot reach the GitHub Actions token endpoint")?;
        if !response.status().is_success() {
            bail!(
                "the GitHub Actions token endpoint answered {}",
                response.status()
            );
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            value: String,
        }
        let body = crate::store::body::read_limited(response, 256 << 10)
            .await
            .map_err(|e| {
                anyhow!("the GitHub Actions token endpoint's answer is unreadable: {e}")
            })?;
        let answer: Answer = serde_json::from_slice(&body)
            .context("the GitHub Actions token endpoint answered malformed JSON")?;
        Ok(answer.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_without_email_prove_sub() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"iss":"https://token.actions.githubusercontent.com","sub":"repo:o/r:ref:refs/heads/main"}"#);
        let claims = decode_claims(&format!("e30.{payload}.sig")).unwrap();
        assert_eq!(claims.proof_subject(), "repo:o/r:ref:refs/heads/main");
        assert!(decode_claims("garbage").is_err());
    }
}
