//! The README's supported-op list is the op registry's (`q8_frontend::ops::supported_ops`).

#[test]
fn readme_lists_exactly_the_registered_ops() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let (_, rest) = readme
        .split_once("<!-- ops:begin -->")
        .expect("begin marker");
    let (list, _) = rest.split_once("<!-- ops:end -->").expect("end marker");
    let listed: Vec<&str> = list.split(',').map(str::trim).collect();
    let registered = q8_frontend::ops::supported_ops();
    assert_eq!(
        listed, registered,
        "README.md's op list is stale: replace it with the output of `q8 ops | paste -sd, | sed 's/,/, /g'`"
    );
}
