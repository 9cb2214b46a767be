//! The README's promises that can drift: its code snippet is the example's source.

use aer_tests::repo_root;

#[test]
fn readme_snippet_is_the_minimal_example() {
    let root = repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let src = std::fs::read_to_string(root.join("examples/minimal-detector/src/lib.rs")).unwrap();
    let snippet = src
        .split("// README-SNIPPET-START\n")
        .nth(1)
        .and_then(|s| s.split("// README-SNIPPET-END").next())
        .expect("snippet markers in the example");
    assert!(
        readme.contains(snippet.trim_end()),
        "README.md's snippet differs from examples/minimal-detector/src/lib.rs"
    );
}
