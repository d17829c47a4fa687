//! Signing events: for tests, the deterministic generators and the load tools. Relays only
//! verify.

use secp256k1::{schnorr, Keypair};

use super::event::{id_hash, write_tags, Event, Header, Invalid, Limits};
use super::hex;
use super::json::write_str;
use super::tags::Tags;

/// A secret key and its x-only public key.
pub struct Keys {
    keypair: Keypair,
    pub pubkey: [u8; 32],
}

impl Keys {
    /// `None` if `secret` is zero or not below the curve order.
    pub fn from_secret(secret: [u8; 32]) -> Option<Keys> {
        let keypair = Keypair::from_secret_bytes(secret).ok()?;
        let pubkey = keypair.x_only_public_key().0.to_byte_array();
        Some(Keys { keypair, pubkey })
    }

    /// Signs without auxiliary randomness, so the same input always gives the same event
    /// (BIP-340 allows this; it is what deterministic test data needs).
    pub fn sign(
        &self,
        created_at: u64,
        kind: u64,
        tags: Tags,
        content: &str,
        limits: &Limits,
    ) -> Result<Event, Invalid> {
        let mut tags_json = Vec::new();
        write_tags(&mut tags_json, &tags);
        let mut content_json = Vec::new();
        write_str(&mut content_json, content);
        let mut pk_hex = Vec::with_capacity(64);
        hex::encode_into(&self.pubkey, &mut pk_hex);
        let id = id_hash(&pk_hex, created_at, kind, &tags_json, &content_json);
        let sig = schnorr::sign_no_aux_rand(&id, &self.keypair).to_byte_array();
        Event::assemble(
            Header {
                id,
                pubkey: self.pubkey,
                sig,
                created_at,
                kind,
            },
            tags,
            content.to_owned(),
            limits,
        )
    }

    /// Mines NIP-13 proof of work: signs the event with a `["nonce", n, target]` tag added,
    /// `n` counting up until the id has at least `target` leading zero bits (ids only are
    /// hashed in the loop; the signature is made once). `commit` is the target written in
    /// the tag (normally `target`; tests commit to less to check relays refuse it).
    #[allow(clippy::too_many_arguments)]
    pub fn mine(
        &self,
        created_at: u64,
        kind: u64,
        tags: &[Vec<String>],
        content: &str,
        target: u32,
        commit: u32,
        limits: &Limits,
    ) -> Result<Event, Invalid> {
        let mut content_json = Vec::new();
        write_str(&mut content_json, content);
        let mut pk_hex = Vec::with_capacity(64);
        hex::encode_into(&self.pubkey, &mut pk_hex);
        let mut tags_json = Vec::new();
        for n in 0u64.. {
            let mut all = tags.to_vec();
            all.push(vec!["nonce".into(), n.to_string(), commit.to_string()]);
            let t = Tags::from_vecs(&all);
            tags_json.clear();
            write_tags(&mut tags_json, &t);
            let id = id_hash(&pk_hex, created_at, kind, &tags_json, &content_json);
            if crate::policy::pow::difficulty(&id) >= target {
                return self.sign(created_at, kind, t, content, limits);
            }
        }
        Err(Invalid::new("no nonce found".to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nostr::{verify, JsonParser};

    #[test]
    fn signed_events_verify_and_round_trip() {
        let keys = Keys::from_secret([7u8; 32]).expect("key");
        let tags = Tags::from_vecs(&[vec!["t", "wok"], vec!["e", &"ab".repeat(32)]]);
        let ev = keys
            .sign(1_700_000_000, 1, tags, "héllo \u{7f}\n", &Limits::default())
            .expect("sign");
        assert!(verify::check_event(&ev).is_ok());
        let mut json = ev.json().to_vec();
        let back =
            Event::parse(&mut json, &mut JsonParser::new(), &Limits::default()).expect("parse");
        assert_eq!(back, ev);

        let mut forged = ev.clone();
        forged.sig[0] ^= 1;
        assert_eq!(
            verify::check_event(&forged).err().map(|e| e.0),
            Some("bad signature".into())
        );
        assert!(Keys::from_secret([0u8; 32]).is_none());
    }
}
