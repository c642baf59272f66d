//! The cache key: the op's name and its arguments, of any type, behind one type moka can hold.

use std::any::Any;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

/// What every argument of a cached op must be once owned: its part of the cache key.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a cache key",
    label = "an argument of a cached op",
    note = "the arguments of an op with `cache = ...` make its cache key: each must be `Hash + Eq + Send + Sync + 'static` once owned (`i64`, `String` or `&str`, `Uuid`, tuples of those); pass a key-like value instead of this one, or drop `cache`"
)]
pub trait CacheKeyPart: Hash + Eq + Send + Sync + 'static {}

impl<T: Hash + Eq + Send + Sync + 'static> CacheKeyPart for T {}

/// One argument's part of the key: the value itself, owned (`&str` becomes `String`).
#[inline]
pub fn key_part<T>(value: &T) -> T::Owned
where
    T: ToOwned + ?Sized,
    T::Owned: CacheKeyPart,
{
    value.to_owned()
}

/// Arguments of any key type, compared and hashed through `Any`.
trait AnyKey: Send + Sync {
    fn eq_any(&self, other: &dyn Any) -> bool;
    fn hash_any(&self, state: &mut dyn Hasher);
    fn as_any(&self) -> &dyn Any;
}

impl<K: CacheKeyPart> AnyKey for K {
    fn eq_any(&self, other: &dyn Any) -> bool {
        other.downcast_ref::<K>().is_some_and(|o| o == self)
    }

    fn hash_any(&self, mut state: &mut dyn Hasher) {
        self.hash(&mut state);
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// An entry's key: the op and its arguments. The op's time to live rides along for moka's
/// expiry and takes no part in equality.
#[derive(Clone)]
pub(crate) struct CacheKey {
    pub(crate) op: &'static str,
    pub(crate) ttl: Duration,
    args: Arc<dyn AnyKey>,
}

impl CacheKey {
    pub(crate) fn new<K: CacheKeyPart>(op: &'static str, ttl: Duration, args: K) -> CacheKey {
        CacheKey {
            op,
            ttl,
            args: Arc::new(args),
        }
    }
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &CacheKey) -> bool {
        self.op == other.op && self.args.eq_any(other.args.as_any())
    }
}

impl Eq for CacheKey {}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.op.hash(state);
        self.args.hash_any(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;

    fn hash(k: &CacheKey) -> u64 {
        let mut h = DefaultHasher::new();
        k.hash(&mut h);
        h.finish()
    }

    #[test]
    fn keys_compare_by_op_and_arguments() {
        let ttl = Duration::from_secs(1);
        let a = CacheKey::new("op", ttl, (42_i64, key_part("x")));
        let b = CacheKey::new("op", Duration::from_secs(9), (42_i64, "x".to_owned()));
        assert!(a == b);
        assert_eq!(hash(&a), hash(&b));
        assert!(a != CacheKey::new("op", ttl, (43_i64, "x".to_owned())));
        assert!(a != CacheKey::new("other", ttl, (42_i64, "x".to_owned())));
        // The same values in another type are another key.
        assert!(a != CacheKey::new("op", ttl, (42_i32, "x".to_owned())));
    }
}
