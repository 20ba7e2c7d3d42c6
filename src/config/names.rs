//! Topic-safe names and how configuration entries are named in errors.

/// Longest name allowed in a topic segment (CONTRACT.md, "Names").
const MAX_NAME_LEN: usize = 64;

/// Why `name` cannot be a topic segment, or `None` when it matches
/// `[A-Za-z0-9._-]{1,64}`. Written by hand: one character class needs no regex
/// engine in the daemon.
pub(super) fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Some(format!(
            "{name:?} contains {c:?}; only A-Z a-z 0-9 . _ - are allowed \
             (the name is an MQTT topic segment)"
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Some(format!(
            "{name:?} is {} characters long; at most {MAX_NAME_LEN} are allowed",
            name.len()
        ));
    }
    None
}

/// How errors name entry `index` of an array of tables: `readers[1] (door1-em)`,
/// or just `readers[1]` when the name itself is not usable.
pub(super) fn entry_label(section: &str, index: usize, name: &str) -> String {
    if name_problem(name).is_none() {
        format!("{section}[{index}] ({name})")
    } else {
        format!("{section}[{index}]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_contract_character_class() {
        for name in [
            "a",
            "dock-door-1",
            "reno_1",
            "pi.03",
            "A-Z.09_x",
            &"x".repeat(64),
        ] {
            assert_eq!(name_problem(name), None, "{name:?}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        for name in [
            "",
            "dock 1",
            "a/b",
            "a+b",
            "a#b",
            "é",
            "tab\t",
            &"x".repeat(65),
        ] {
            assert!(name_problem(name).is_some(), "{name:?} was accepted");
        }
    }

    #[test]
    fn labels_entries_with_their_name_when_usable() {
        assert_eq!(
            entry_label("readers", 1, "door1-em"),
            "readers[1] (door1-em)"
        );
        assert_eq!(entry_label("readers", 1, "bad name"), "readers[1]");
        assert_eq!(entry_label("locations", 0, ""), "locations[0]");
    }
}
