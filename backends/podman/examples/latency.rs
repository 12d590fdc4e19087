//! Time the first and later requests on a fresh PodmanRuntime:
//! `cargo run -p bottle-podman --example latency -- [container]`.

use bottle_podman::PodmanRuntime;
use bottle_runtime::{ContainerRuntime, ExecRequest};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let container = std::env::args().nth(1);
    let rt = PodmanRuntime::connect(None, Duration::from_secs(30))?;
    println!("endpoint {}", rt.endpoint());
    for i in 0..5 {
        let t = Instant::now();
        let v = rt.version().await?;
        println!("version #{i}: {:?} ({})", t.elapsed(), v.version);
    }
    if let Some(c) = container {
        for i in 0..5 {
            let t = Instant::now();
            rt.inspect(&c).await?;
            println!("inspect #{i}: {:?}", t.elapsed());
        }
        for i in 0..5 {
            let t = Instant::now();
            let out = rt.exec(&c, ExecRequest::new(["id", "-u"])).await?;
            println!("exec #{i}: {:?} (exit {})", t.elapsed(), out.exit_code);
        }
    }
    Ok(())
}
