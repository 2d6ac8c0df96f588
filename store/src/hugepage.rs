//! Large tables read and written at random (the key index's hash slots: 20 MB by default) on
//! transparent huge pages. On 4 KiB pages nearly every slot access misses the TLB, and in a
//! virtual machine a miss walks two page tables: the broker spent 6 % of its time on the one
//! slot store of each message. Where THP is enabled only on request (`madvise`, a common
//! default), the table has to ask for it.

/// Huge pages on x86-64 and most other 64-bit Linux hosts.
const HUGE_PAGE: usize = 2 << 20;

/// A zeroed table of `len` slots, on huge pages where the kernel grants them.
pub(crate) fn zeroed_table(len: usize) -> Vec<u32> {
    // Large zeroed allocations are fresh mappings whose pages are not touched yet, so the
    // advice takes effect at the first write of each huge page.
    let mut table = vec![0u32; len];
    advise_huge_pages(table.as_mut_ptr().cast(), len * std::mem::size_of::<u32>());
    table
}

fn advise_huge_pages(start: *mut u8, len: usize) {
    let from = (start as usize).next_multiple_of(HUGE_PAGE);
    let to = (start as usize + len) / HUGE_PAGE * HUGE_PAGE;
    if from >= to {
        return;
    }
    // SAFETY: [from, to) lies inside the live allocation `start..start + len`, and
    // MADV_HUGEPAGE only changes how the kernel backs those pages, never their contents.
    #[allow(unsafe_code)]
    let advised =
        unsafe { nix::sys::mman::madvise(from as *mut _, to - from, nix::sys::mman::MmapAdvise::MADV_HUGEPAGE) };
    if let Err(e) = advised {
        // Kernels without THP say EINVAL: the table works, only slower.
        tracing::debug!(error = %e, "no transparent huge pages for a slot table");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_zeroed_whatever_their_size() {
        for len in [0, 1, 1000, 3 << 20] {
            let table = zeroed_table(len);
            assert_eq!(table.len(), len);
            assert!(table.iter().all(|&slot| slot == 0));
        }
    }
}
