//! bottlectl's exit codes (docs/cli.md "Exit codes"): the libraries class
//! their errors, this module numbers them, in one place.

use bottle::ssh::ErrorClass;

/// Usage, configuration, manifest or plan error; a strict refusal.
pub const INPUT: u8 = 2;
/// Engine or container error; a local I/O failure.
pub const ENGINE: u8 = 3;

/// The code for a provisioner error.
pub fn for_ssh(e: &bottle::ssh::Error) -> u8 {
    match e.class() {
        ErrorClass::Input | ErrorClass::Refused => INPUT,
        _ => ENGINE,
    }
}

/// The code for a runtime-selection error.
pub fn for_select(e: &bottle::SelectError) -> u8 {
    if e.is_usage_error() {
        INPUT
    } else {
        ENGINE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_map_to_the_documented_codes() {
        let plan = bottle::ssh::Error::Target {
            field: "user".into(),
            reason: "is empty".into(),
        };
        assert_eq!(for_ssh(&plan), INPUT);
        let refused = bottle::ssh::Error::UserCanBecomeRoot {
            container: "c".into(),
            how: vec!["sudo".into()],
        };
        assert_eq!(for_ssh(&refused), INPUT);
        let missing = bottle::ssh::Error::MissingInContainer {
            container: "c".into(),
            missing: Vec::new(),
            hint: None,
        };
        assert_eq!(for_ssh(&missing), ENGINE);
    }
}
