//! "Did you mean ...?" for typos in keys, capabilities and step ids.

/// The candidate closest to `typed` by edit distance (a swap of two neighbours counts as one
/// edit), if it is close enough to be a plausible typo.
pub(crate) fn closest<'c>(
    typed: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let limit = 1 + typed.chars().count() / 4;
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(typed, candidate), candidate))
        .filter(|&(distance, _)| distance <= limit)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate)
}

/// Optimal-string-alignment distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut table = vec![0usize; (a.len() + 1) * width];
    for (i, row) in table.chunks_mut(width).enumerate() {
        row[0] = i;
    }
    for (j, cell) in table.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let substitution = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (table[(i - 1) * width + j] + 1)
                .min(table[i * width + j - 1] + 1)
                .min(table[(i - 1) * width + j - 1] + substitution);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(table[(i - 2) * width + j - 2] + 1);
            }
            table[i * width + j] = best;
        }
    }
    table[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_plausible_typos_only() {
        let keys = ["quantity", "product", "priority", "due"];
        let cases = [
            ("quantitty", Some("quantity")),
            ("prodcut", Some("product")),
            ("priorty", Some("priority")),
            ("deu", Some("due")),
            ("colour", None),
        ];
        for (typed, expected) in cases {
            assert_eq!(closest(typed, keys), expected, "{typed}");
        }
    }

    #[test]
    fn distance_counts_edits() {
        assert_eq!(edit_distance("laser", "laser"), 0);
        assert_eq!(edit_distance("lazer", "laser"), 1);
        assert_eq!(edit_distance("lsaer", "laser"), 1);
        assert_eq!(edit_distance("", "fdm"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
