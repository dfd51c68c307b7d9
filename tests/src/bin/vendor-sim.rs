//! `vendor-sim [PORT]`: serves the VirusTotal and Falcon simulators on
//! loopback until killed, printing the base URL on its first line.

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = std::env::args()
        .nth(1)
        .map(|p| p.parse().expect("PORT must be a number"))
        .unwrap_or(0);
    let server = soar_e2e::sim::start(port).await?;
    println!("{}", server.uri());
    std::future::pending::<()>().await;
    Ok(())
}
