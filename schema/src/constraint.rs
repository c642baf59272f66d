use crate::value::Typed;

/// A rule between keys of one schema. Each names the key it blames, and says why in words
/// that end with what to do.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Constraint {
    /// `small` at most `large` (durations or numbers), when both have a value, given or by
    /// default.
    Order {
        /// The key that must be the smaller.
        small: &'static str,
        /// The key that must be the larger.
        large: &'static str,
        /// The key at fault when both were given.
        blame: Side,
        /// When `small` keeps its default, it is capped at `large` instead: the rule binds a
        /// given `small` only.
        default_capped: bool,
        /// Why, and what to do.
        why: &'static str,
    },
    /// `key`, when given, needs one of `needs` to have a value.
    Needs {
        /// The key given.
        key: &'static str,
        /// Keys of which one must have a value.
        needs: &'static [&'static str],
        /// Why, and what to do.
        why: &'static str,
    },
    /// `key` and `other` do not go together.
    Excludes {
        /// The key at fault when both are given.
        key: &'static str,
        /// The key it excludes.
        other: &'static str,
        /// Why, and what to do.
        why: &'static str,
    },
    /// `key`, when given, has no effect while `other` has `value`.
    Useless {
        /// The key given.
        key: &'static str,
        /// The key whose value makes it useless.
        other: &'static str,
        /// That value.
        value: Typed<'static>,
        /// Why, and what to do.
        why: &'static str,
    },
}

/// One side of an [`Constraint::Order`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The key that must be the smaller.
    Small,
    /// The key that must be the larger.
    Large,
}
