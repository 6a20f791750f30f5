//! Cache keys: BLAKE3 over every part that changes a vector.

use std::fmt;
use std::sync::Arc;

use embeddings_core::{InputType, OutputType, ProviderInfo};

/// The key of one cached row: BLAKE3 over the provider fingerprint, the
/// model, the dimension, the input type, the output type and the text.
///
/// Stores keep this hash, never the text.
///
/// ```
/// use embeddings_cache::{Key, Space};
/// use embeddings_core::{InputType, OutputType, ProviderInfo};
///
/// let info = ProviderInfo::new("mock", "mock", 8);
/// let space = Space::new(&info, 8, OutputType::F32);
/// let doc = space.key(InputType::Document, "hello");
/// assert_eq!(doc, space.key(InputType::Document, "hello"));
/// assert_ne!(doc, space.key(InputType::Query, "hello"));
/// assert_ne!(doc, Space::new(&info, 4, OutputType::F32).key(InputType::Document, "hello"));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub [u8; 32]);

impl Key {
    /// The 32 bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex (64 characters).
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            use fmt::Write;
            let _ = write!(s, "{b:02x}");
        }
        s
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({}..)", &self.to_hex()[..12])
    }
}

/// What the rows of one cache space share: the provider fingerprint, the
/// dimension and the output type (so every row of a space has the same
/// size). A disk store keeps one file per space.
///
/// Cheap to clone (one `Arc`).
#[derive(Clone, PartialEq, Eq)]
pub struct Space(Arc<SpaceInner>);

#[derive(PartialEq, Eq)]
struct SpaceInner {
    fingerprint: String,
    dimension: usize,
    output: OutputType,
    id: [u8; 32],
    /// One derived key per input type (`InputType::ALL` order), so that a
    /// row key is one keyed hash of the text.
    keys: [[u8; 32]; 5],
}

const DOMAIN: &[u8] = b"embeddings-cache key v1\0";

fn put_str(h: &mut blake3::Hasher, s: &str) {
    h.update(&(s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

impl Space {
    /// The space of `info`'s fingerprint (provider, model and every
    /// vector-changing setting) at `dimension` in `output`.
    pub fn new(info: &ProviderInfo, dimension: usize, output: OutputType) -> Space {
        Space::from_parts(&info.fingerprint(), &info.model, dimension, output)
    }

    /// The space of an explicit fingerprint and model (for tools that list
    /// a store without a provider at hand).
    pub fn from_parts(
        fingerprint: &str,
        model: &str,
        dimension: usize,
        output: OutputType,
    ) -> Space {
        let mut h = blake3::Hasher::new();
        h.update(DOMAIN);
        put_str(&mut h, fingerprint);
        put_str(&mut h, model);
        h.update(&(dimension as u64).to_le_bytes());
        put_str(&mut h, output.as_str());
        let id = *h.finalize().as_bytes();
        let mut keys = [[0u8; 32]; 5];
        for (k, t) in keys.iter_mut().zip(InputType::ALL) {
            let mut h = blake3::Hasher::new_keyed(&id);
            put_str(&mut h, t.as_str());
            *k = *h.finalize().as_bytes();
        }
        Space(Arc::new(SpaceInner {
            fingerprint: fingerprint.to_owned(),
            dimension,
            output,
            id,
            keys,
        }))
    }

    /// The key of `text` embedded as `input_type` in this space.
    #[inline]
    pub fn key(&self, input_type: InputType, text: &str) -> Key {
        let i = InputType::ALL
            .iter()
            .position(|t| *t == input_type)
            .unwrap_or(0);
        let derived = match self.0.keys.get(i) {
            Some(k) if InputType::ALL.get(i) == Some(&input_type) => *k,
            // An input type newer than this crate: derive its key on the spot.
            _ => {
                let mut h = blake3::Hasher::new_keyed(&self.0.id);
                put_str(&mut h, input_type.as_str());
                *h.finalize().as_bytes()
            }
        };
        Key(*blake3::keyed_hash(&derived, text.as_bytes()).as_bytes())
    }

    /// The provider fingerprint.
    pub fn fingerprint(&self) -> &str {
        &self.0.fingerprint
    }

    /// The dimension of every row.
    #[inline]
    pub fn dimension(&self) -> usize {
        self.0.dimension
    }

    /// The output type of every row.
    #[inline]
    pub fn output_type(&self) -> OutputType {
        self.0.output
    }

    /// Bytes of one row (4 per `f32`, 1 per byte, packed bits for binary).
    #[inline]
    pub fn row_bytes(&self) -> usize {
        self.0.output.row_len(self.0.dimension) * self.0.output.element_size()
    }

    /// A hash of fingerprint, model, dimension and output type: the name of
    /// the space in a store.
    #[inline]
    pub fn id(&self) -> &[u8; 32] {
        &self.0.id
    }
}

impl fmt::Debug for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Space")
            .field("fingerprint", &self.0.fingerprint)
            .field("dimension", &self.0.dimension)
            .field("output", &self.0.output)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_changes_the_key() {
        let base = Space::from_parts("provider=a;model=m", "m", 8, OutputType::F32);
        let k = base.key(InputType::Document, "t");
        let others = [
            Space::from_parts("provider=b;model=m", "m", 8, OutputType::F32)
                .key(InputType::Document, "t"),
            Space::from_parts("provider=a;model=m", "n", 8, OutputType::F32)
                .key(InputType::Document, "t"),
            Space::from_parts("provider=a;model=m", "m", 9, OutputType::F32)
                .key(InputType::Document, "t"),
            Space::from_parts("provider=a;model=m", "m", 8, OutputType::Int8)
                .key(InputType::Document, "t"),
            base.key(InputType::Query, "t"),
            base.key(InputType::Document, "u"),
        ];
        for o in others {
            assert_ne!(k, o);
        }
        assert_eq!(k, base.key(InputType::Document, "t"));
        assert_eq!(base.row_bytes(), 32);
        assert_eq!(
            Space::from_parts("x", "m", 9, OutputType::Ubinary).row_bytes(),
            2
        );
    }
}
