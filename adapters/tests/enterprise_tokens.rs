//! Enterprise sign-in: tokens of the OA identity provider (RS256, ES256, EdDSA) verified against
//! its JWKS, from a file and from a URL, with issuer, audience and lifetime checks.

use std::path::PathBuf;

use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use meetline_adapters::auth::{Enterprise, JwksSource, JwtKeys};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ISSUER: &str = "https://idp.acme.example";
const AUDIENCE: &str = "meetline";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/idp")
        .join(name)
}

/// The fixtures are DER: RSA as PKCS#1, EC and Ed25519 as PKCS#8.
fn key(name: &str, algorithm: Algorithm) -> EncodingKey {
    let der = std::fs::read(fixture(name)).unwrap();
    match algorithm {
        Algorithm::RS256 => EncodingKey::from_rsa_der(&der),
        Algorithm::ES256 => EncodingKey::from_ec_der(&der),
        Algorithm::EdDSA => EncodingKey::from_ed_der(&der),
        other => panic!("no fixture for {other:?}"),
    }
}

fn claims(lifetime_hours: i64) -> Value {
    let now = Utc::now().timestamp();
    json!({"sub": "zhangwei", "tenant": "acme", "roles": ["admin"], "iss": ISSUER, "aud": AUDIENCE,
           "iat": now, "exp": now + lifetime_hours * 3600})
}

fn sign(algorithm: Algorithm, kid: Option<&str>, der: &str, claims: &Value) -> String {
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, &key(der, algorithm)).unwrap()
}

async fn keys_from_file() -> JwtKeys {
    let enterprise = Enterprise::load(JwksSource::File(fixture("jwks.json")), ISSUER, AUDIENCE)
        .await
        .unwrap();
    JwtKeys::from_secret(b"embedded-secret").with_enterprise(enterprise)
}

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_of_the_identity_provider_verify() {
    let keys = keys_from_file().await;
    for (algorithm, kid, der) in [
        (Algorithm::RS256, "rsa-1", "rsa.der"),
        (Algorithm::ES256, "ec-1", "ec.der"),
        (Algorithm::EdDSA, "ed-1", "ed.der"),
    ] {
        let token = sign(algorithm, Some(kid), der, &claims(8));
        let principal = keys
            .verify(&token)
            .unwrap_or_else(|_| panic!("{algorithm:?}"));
        assert_eq!(principal.tenant.as_str(), "acme");
        assert_eq!(principal.actor.user.as_str(), "zhangwei");
        assert!(principal.actor.admin);
        // Without a key id, every key of the set is tried.
        assert!(keys.verify(&sign(algorithm, None, der, &claims(8))).is_ok());
    }
}

#[tokio::test]
async fn wrong_issuer_audience_lifetime_or_signer_is_refused() {
    let keys = keys_from_file().await;
    let refused = |claims: Value| sign(Algorithm::RS256, Some("rsa-1"), "rsa.der", &claims);
    let mut wrong_issuer = claims(1);
    wrong_issuer["iss"] = json!("https://evil.example");
    assert!(keys.verify(&refused(wrong_issuer)).is_err());
    let mut wrong_audience = claims(1);
    wrong_audience["aud"] = json!("another-app");
    assert!(keys.verify(&refused(wrong_audience)).is_err());
    let mut no_issuer = claims(1);
    no_issuer.as_object_mut().unwrap().remove("iss");
    assert!(keys.verify(&refused(no_issuer)).is_err());
    // Longer than 12 hours (the default maximum).
    assert!(keys.verify(&refused(claims(13))).is_err());
    let mut until_2100 = claims(1);
    until_2100["exp"] = json!(4_102_444_800_i64);
    assert!(keys.verify(&refused(until_2100)).is_err());
    // Signed by a key the provider does not publish, under a published key id.
    let forged = sign(Algorithm::RS256, Some("rsa-1"), "other-rsa.der", &claims(1));
    assert!(keys.verify(&forged).is_err());
    // A key id the set does not have.
    let unknown = sign(Algorithm::RS256, Some("rsa-9"), "rsa.der", &claims(1));
    assert!(keys.verify(&unknown).is_err());
}

#[tokio::test]
async fn an_hs256_token_signed_with_a_public_key_as_secret_is_refused() {
    // Algorithm confusion: HS256 "signed" with the RSA public key's bytes.
    let keys = keys_from_file().await;
    let jwks: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("jwks.json")).unwrap()).unwrap();
    let public = jwks["keys"][0]["n"].as_str().unwrap();
    let token = encode(
        &Header::new(Algorithm::HS256),
        &claims(1),
        &EncodingKey::from_secret(public.as_bytes()),
    )
    .unwrap();
    assert!(keys.verify(&token).is_err());
}

#[tokio::test]
async fn the_jwks_is_fetched_from_a_url() {
    let server = MockServer::start().await;
    let jwks = std::fs::read_to_string(fixture("jwks.json")).unwrap();
    Mock::given(method("GET"))
        .and(path("/.well-known/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_string(jwks))
        .expect(1)
        .mount(&server)
        .await;
    let source = JwksSource::parse(&format!("{}/.well-known/jwks.json", server.uri())).unwrap();
    let enterprise = Enterprise::load(source, ISSUER, AUDIENCE).await.unwrap();
    let keys = JwtKeys::from_secret(b"s").with_enterprise(enterprise);
    let token = sign(Algorithm::ES256, Some("ec-1"), "ec.der", &claims(2));
    assert!(keys.verify(&token).is_ok());
    // Plain http to anything but a loopback host is refused.
    assert!(JwksSource::parse("http://idp.acme.example/jwks.json").is_err());
}
