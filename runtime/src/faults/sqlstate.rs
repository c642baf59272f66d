//! Which SQLSTATEs an injected fault may raise.

/// Is `code` a SQLSTATE an injected fault may raise: five digits or capital letters, not of
/// class 00 (success), 01 (warning) or 02 (no data), which are not errors?
pub(super) fn check_sqlstate(code: &str) -> std::result::Result<(), String> {
    let well_formed = code.len() == 5
        && code
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
    if !well_formed {
        return Err(format!(
            "a SQLSTATE of five digits or capital letters such as \"40001\", not {code:?}"
        ));
    }
    if ["00", "01", "02"].contains(&&code[..2]) {
        return Err(format!(
            "an error SQLSTATE: class {} is not an error",
            &code[..2]
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_are_checked() {
        assert!(check_sqlstate("40001").is_ok());
        assert!(check_sqlstate("57P01").is_ok());
        assert!(check_sqlstate("4000").is_err());
        assert!(check_sqlstate("4000a").is_err());
        assert!(check_sqlstate("00000").is_err());
        assert!(check_sqlstate("01000").is_err());
    }
}
