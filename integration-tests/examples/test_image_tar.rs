//! Write the test image's root filesystem to a file, for manual inspection or
//! `docker import FILE REF`: `cargo run -p bottle-integration-tests --example test_image_tar -- /tmp/rootfs.tar`
fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "bottle-test-rootfs.tar".to_string());
    match bottle_integration_tests::image::build_test_image() {
        Ok(image) => {
            std::fs::write(&path, &image.tar).expect("write archive");
            println!("{} {} ({} bytes)", image.reference, path, image.tar.len());
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
