//! The `input` field of embedding requests: a string, a list of strings, a
//! list of token ids or a list of lists of token ids; strings borrowed from the
//! request body whenever they hold no escape.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};

/// A parsed `input`.
#[derive(Debug)]
pub(crate) enum Input<'a> {
    /// Texts.
    Texts(Vec<Cow<'a, str>>),
    /// Token ids, one list per input.
    Tokens(Vec<Vec<u32>>),
}

/// One element of an `input` list.
enum Item<'a> {
    Text(Cow<'a, str>),
    Token(u32),
    Tokens(Vec<u32>),
}

/// A string that borrows from the request body when it can.
pub(crate) struct Text<'a>(pub(crate) Cow<'a, str>);

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Text(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Text(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Text(Cow::Owned(v)))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TextVisitor)
    }
}

struct ItemVisitor;

fn token<E: de::Error>(v: u64) -> Result<u32, E> {
    u32::try_from(v).map_err(|_| E::custom(format!("invalid token id {v}")))
}

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = Item<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, a token id or a list of token ids")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Item::Text(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Item::Text(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Item::Text(Cow::Owned(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        token(v).map(Item::Token)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        u64::try_from(v)
            .map_err(|_| E::custom(format!("invalid token id {v}")))
            .and_then(token)
            .map(Item::Token)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut tokens = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(t) = seq.next_element::<u64>()? {
            tokens.push(token(t)?);
        }
        Ok(Item::Tokens(tokens))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Item<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ItemVisitor)
    }
}

struct InputVisitor;

const MIXED: &str = "'$.input' is invalid: a list must hold only strings, only token ids, or only lists of token ids";

impl<'de> Visitor<'de> for InputVisitor {
    type Value = Input<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or a list")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Input::Texts(vec![Cow::Borrowed(v)]))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Input::Texts(vec![Cow::Owned(v.to_owned())]))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Input::Texts(vec![Cow::Owned(v)]))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let hint = seq.size_hint().unwrap_or(0).min(4096);
        let Some(first) = seq.next_element::<Item<'de>>()? else {
            return Ok(Input::Texts(Vec::new()));
        };
        match first {
            Item::Text(t) => {
                let mut texts = Vec::with_capacity(hint.max(1));
                texts.push(t);
                while let Some(item) = seq.next_element::<Item<'de>>()? {
                    match item {
                        Item::Text(t) => texts.push(t),
                        _ => return Err(de::Error::custom(MIXED)),
                    }
                }
                Ok(Input::Texts(texts))
            }
            Item::Token(t) => {
                let mut tokens = vec![t];
                while let Some(item) = seq.next_element::<Item<'de>>()? {
                    match item {
                        Item::Token(t) => tokens.push(t),
                        _ => return Err(de::Error::custom(MIXED)),
                    }
                }
                Ok(Input::Tokens(vec![tokens]))
            }
            Item::Tokens(t) => {
                let mut lists = vec![t];
                while let Some(item) = seq.next_element::<Item<'de>>()? {
                    match item {
                        Item::Tokens(t) => lists.push(t),
                        _ => return Err(de::Error::custom(MIXED)),
                    }
                }
                Ok(Input::Tokens(lists))
            }
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Input<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(InputVisitor)
    }
}
