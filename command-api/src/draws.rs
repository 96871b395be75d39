//! The randomness commands carry: the aggregate draws none, so the command side draws it here,
//! from the operating system's CSPRNG by way of `rand`'s thread-local generator (ChaCha, reseeded
//! from the OS), and passes it in.

use meetline_domain::types::{ConferenceNumber, NUMBER_SPACE, NumberDraw, RoomNonce};
use rand::{Rng, RngCore};

/// 16 random bytes naming the rooms a command opens.
pub fn rooms() -> RoomNonce {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let hex = meetline_domain::types::hex(&bytes);
    RoomNonce::parse(&hex).expect("32 hex digits")
}

/// [`NumberDraw::CANDIDATES`] conference numbers drawn uniformly from the nine-digit space: a
/// number says nothing about any other conference's, so numbers cannot be enumerated.
pub fn numbers() -> NumberDraw {
    let mut rng = rand::rng();
    let candidates = (0..NumberDraw::CANDIDATES)
        .map(|_| ConferenceNumber::from_draw(rng.random_range(0..NUMBER_SPACE)))
        .collect();
    NumberDraw::new(candidates).expect("a few candidates")
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn drawn_numbers_are_nine_digits_and_spread_over_the_space() {
        let drawn: Vec<u64> = (0..2_000)
            .flat_map(|_| numbers().candidates().to_vec())
            .map(|number| number.as_str().parse().unwrap())
            .collect();
        assert!(
            drawn
                .iter()
                .all(|n| (100_000_000..=999_999_999).contains(n))
        );
        let distinct: HashSet<_> = drawn.iter().collect();
        assert!(
            distinct.len() > 7_990,
            "{} distinct of 8,000",
            distinct.len()
        );
        // Consecutive draws are not an arithmetic sequence (the old numbers were affine).
        let steps: HashSet<i64> = drawn
            .windows(2)
            .map(|pair| pair[1] as i64 - pair[0] as i64)
            .collect();
        assert!(steps.len() > 7_900);
        // Both halves of the space are used.
        assert!(drawn.iter().any(|n| *n < 550_000_000) && drawn.iter().any(|n| *n >= 550_000_000));
    }

    #[test]
    fn room_nonces_differ() {
        assert_ne!(rooms(), rooms());
    }
}
