pub mod nostr;
