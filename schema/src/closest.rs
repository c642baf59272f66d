/// The accepted word closest to a typo, when it is close enough to be a likely fix: within a
/// third of the word's length in edits (`tiemout` for `timeout`), or one being the start of
/// the other (`maximum` for `max`, `acquire` for `acquire_timeout`).
pub fn closest<'a>(name: &str, accepted: &[&'a str]) -> Option<&'a str> {
    let by_distance = accepted
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, k)| *d <= (k.len().max(name.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k);
    by_distance.or_else(|| {
        accepted
            .iter()
            .copied()
            .filter(|k| {
                k.len().min(name.len()) >= 3 && (name.starts_with(k) || k.starts_with(name))
            })
            .max_by_key(|k| k.len().min(name.len()))
    })
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_key_and_strangers_find_none() {
        let keys = ["max", "min", "acquire_timeout", "timeout"];
        assert_eq!(closest("tiemout", &keys), Some("timeout"));
        assert_eq!(closest("maximum", &keys), Some("max"));
        assert_eq!(closest("acquire", &keys), Some("acquire_timeout"));
        assert_eq!(closest("colour", &keys), None);
    }
}
