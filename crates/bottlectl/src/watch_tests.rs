//! The watch's lines: one line each, container text escaped.

use super::*;
use bottle::runtime::{ContainerState, EventAction};

#[test]
fn a_line_is_one_line_and_container_text_is_escaped() {
    let c = ContainerInfo {
        id: "0123456789abcdef".into(),
        name: "web\x1b]52;c;eA==\x07".into(),
        state: ContainerState::Running,
    };
    let failure = Failure::plain(3, "cannot provision: \x1b[2Jfake\nprovisioned evil");
    let (value, line) = render(Action::Failed {
        c: c.clone(),
        why: Why::Event(EventAction::Start),
        failure,
        retry_in: None,
    });
    assert!(
        !line.contains('\x1b') && !line.contains('\n') && !line.contains('\x07'),
        "{line}"
    );
    assert!(
        line.starts_with("failed web\\x1b]52;c;eA==\\x07 (0123456789ab) after start: "),
        "{line}"
    );
    assert!(line.contains("\\x1b[2Jfake\\nprovisioned evil"), "{line}");
    // JSON keeps the bytes (serde escapes them).
    assert_eq!(value["container"], c.name.as_str());
    let (_, line) = render(Action::Provisioned {
        c,
        why: Why::Listed,
        secs: 0.5,
        detail: "2 key(s)\r\nforged".into(),
        renew_in: None,
    });
    assert!(line.ends_with("2 key(s)\\r\\nforged"), "{line}");
}
