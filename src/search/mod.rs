//! NIP-50 search: the tokenizer, the text of an event that is indexed, the query language
//! (`search` strings) and BM25 scoring; the posting-block format; and NIP-45 HyperLogLog
//! registers. Pure: the postings live in the store (`store/search.rs`), written in the
//! writer's transaction.

pub mod doc;
pub mod hll;
pub mod postings;
pub mod query;
pub mod tokenize;
