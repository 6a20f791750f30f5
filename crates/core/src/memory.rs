//! Large buffers that fault cheaply.
//!
//! A batch of thousands of vectors is one buffer of tens or hundreds of
//! megabytes (20,000 rows of 1536 `f32`s are 123 MB), and so is the body of
//! an answer to a request of 2048 inputs. The allocator maps such a buffer
//! fresh for every call, and the kernel then faults it in 4 KiB page by
//! page: for a client that only decodes base64 into it, those faults are
//! about a third of its CPU time. On Linux, [`advise_huge_pages`] asks the
//! kernel to back the buffer with transparent huge pages (2 MiB), which
//! takes 512 times fewer faults; where transparent huge pages are off, or
//! on other systems, it does nothing.

/// Buffers of at least this many bytes are advised (smaller ones hold no
/// whole, aligned 2 MiB page worth the advice).
pub const HUGE_PAGE_MIN_BYTES: usize = 4 << 20;

/// The size of a transparent huge page on the platforms that have them.
const HUGE_PAGE: usize = 2 << 20;

/// Asks the kernel to back the allocation of `buf` (its whole capacity)
/// with transparent huge pages, when it holds at least
/// [`HUGE_PAGE_MIN_BYTES`]. Advice only: the contents and the length are
/// unchanged, pages already touched stay as they are, and a refusal by the
/// kernel is ignored. Call it on a fresh buffer, before filling it.
///
/// ```
/// let mut v: Vec<f32> = vec![0.0; 2_000_000]; // 8 MB
/// embeddings_core::memory::advise_huge_pages(&mut v);
/// assert!(v.iter().all(|x| *x == 0.0));
/// ```
pub fn advise_huge_pages<T>(buf: &mut Vec<T>) {
    let bytes = buf.capacity().saturating_mul(std::mem::size_of::<T>());
    if bytes < HUGE_PAGE_MIN_BYTES {
        return;
    }
    let start = buf.as_mut_ptr() as usize;
    let (Some(first), Some(end)) = (
        start.checked_next_multiple_of(HUGE_PAGE),
        start.checked_add(bytes),
    ) else {
        return;
    };
    let last = end - end % HUGE_PAGE;
    if last > first {
        advise(first, last - first);
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn advise(addr: usize, len: usize) {
    // SAFETY: `addr..addr + len` lies inside one live allocation that the
    // caller holds mutably (the capacity of its `Vec`), and is aligned to
    // 2 MiB, so to the page size. MADV_HUGEPAGE changes how the kernel backs
    // the range, never its contents, its mapping or its protection; no Rust
    // reference is invalidated. The result is ignored: it is advice.
    unsafe {
        libc::madvise(addr as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise(_addr: usize, _len: usize) {}

/// `n` zeroed values in one allocation, advised for huge pages when large
/// ([`advise_huge_pages`]).
pub fn zeroed_vec<T: Clone + bytemuck::Zeroable>(n: usize) -> Vec<T> {
    let mut v = vec![T::zeroed(); n];
    advise_huge_pages(&mut v);
    v
}

/// An empty buffer with room for `n` values, advised for huge pages when
/// large ([`advise_huge_pages`]).
pub fn with_capacity<T>(n: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    advise_huge_pages(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advised_buffers_keep_their_contents_and_capacity() {
        for n in [
            0,
            1,
            1000,
            HUGE_PAGE_MIN_BYTES / 4 + 1,
            3 * HUGE_PAGE + 12345,
        ] {
            let mut v: Vec<f32> = zeroed_vec(n);
            assert_eq!(v.len(), n);
            assert!(v.iter().all(|x| x.to_bits() == 0));
            v.iter_mut().enumerate().for_each(|(i, x)| *x = i as f32);
            let cap = v.capacity();
            advise_huge_pages(&mut v);
            assert_eq!(v.capacity(), cap);
            assert!(v.iter().enumerate().all(|(i, x)| *x == i as f32));
            let mut b: Vec<u8> = with_capacity(n);
            assert!(b.is_empty() && b.capacity() >= n);
            b.extend(std::iter::repeat_n(7u8, n));
            assert!(b.iter().all(|x| *x == 7));
        }
    }
}
