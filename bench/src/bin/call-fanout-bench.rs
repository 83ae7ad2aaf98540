//! Call-hook fan-out benchmark: one call event to a service with ten hooks, each on its own
//! loopback receiver; nine answer after FAST ms, one after SLOW ms. Prints, per event, the
//! wall time from posting the event to every delivery being logged as delivered, next to
//! the slowest hook's delay (the ideal) and the sum of all delays (hooks sent one by one).
//!
//!   cargo run -p funnelhooks-bench --bin call-fanout-bench -- [EVENTS] [FAST_MS] [SLOW_MS]
//!
//! Defaults: 10 events, 100 ms, 1000 ms. Deliveries are polled every 5 ms, so figures carry
//! up to ~5 ms of polling on top.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use funnelhooks_testhost::{Answer, Client, HostBuilder, Receiver, repo_root};
use serde_json::{Value, json};

const TOKEN: &str = "bench-admin-token";

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let events: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(10);
    let fast: u64 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(100);
    let slow: u64 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(1000);

    let app = HostBuilder::new(repo_root().join("spin.toml"))
        .variable("admin_token", TOKEN)
        .variable("allow_loopback_webhooks", "true")
        .build()?;
    let server = app.serve().await?;
    let client = Client::new(server.url());
    let auth = format!("Bearer {TOKEN}");
    let admin = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let created = client
        .send("POST", "/api/calls/services", &admin, r#"{"name":"bench"}"#)
        .await?;
    ensure!(created.status == 201, "{}", created.text());
    let (service, key) = {
        let v = created.json();
        (
            v["id"].as_str().unwrap().to_string(),
            v["ingestKey"].as_str().unwrap().to_string(),
        )
    };
    let mut receivers = Vec::new();
    for i in 0..10 {
        let rx = Receiver::start().await?;
        let delay = if i == 9 { slow } else { fast };
        rx.otherwise(Answer::new(200, "ok").after(Duration::from_millis(delay)));
        let hook = json!({"protocol": "http", "host": "127.0.0.1", "port": rx.port(),
                          "path": "/call", "method": "POST", "event": "end",
                          "parameters": [{"name": "id", "param": "id"},
                                         {"name": "city", "param": "city"}]});
        let path = format!("/api/calls/services/{service}/hooks");
        let reply = client.send("POST", &path, &admin, hook.to_string()).await?;
        ensure!(reply.status == 201, "{}", reply.text());
        receivers.push(rx);
    }
    println!(
        "call event -> 10 hooks (9 answer after {fast} ms, 1 after {slow} ms), through the test host, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "  ideal (slowest hook): {slow} ms; one after another: {} ms",
        9 * fast + slow
    );
    let ingest = format!("/api/calls/services/{service}/events?key={key}");
    let json_ct = [("content-type", "application/json")];
    let mut walls = Vec::new();
    let mut answers = Vec::new();
    for n in 0..events {
        let event = json!({"id": 1000 + n, "hook_event": "Call is over", "city": "Omsk"});
        let started = Instant::now();
        let reply = client
            .send("POST", &ingest, &json_ct, event.to_string())
            .await?;
        let answered = started.elapsed();
        ensure!(reply.status == 200, "{}", reply.text());
        let ids: Vec<String> = reply.json()["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["deliveryId"].as_str().unwrap().to_string())
            .collect();
        ensure!(ids.len() == 10, "{}", reply.text());
        for id in &ids {
            loop {
                let d: Value = client
                    .send("GET", &format!("/api/deliveries/{id}"), &admin, "")
                    .await?
                    .json();
                if d["status"] == "delivered" {
                    break;
                }
                ensure!(d["status"] == "pending", "delivery {id}: {d}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let wall = started.elapsed();
        println!(
            "  event {n:>2}: answered in {:>6.1} ms, all 10 delivered in {:>7.1} ms",
            answered.as_secs_f64() * 1e3,
            wall.as_secs_f64() * 1e3
        );
        walls.push(wall);
        answers.push(answered);
    }
    walls.sort();
    answers.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "  median: answer {:.1} ms, all delivered {:.1} ms ({:+.1} ms over the slowest hook); max {:.1} ms",
        ms(answers[answers.len() / 2]),
        ms(walls[walls.len() / 2]),
        ms(walls[walls.len() / 2]) - slow as f64,
        ms(*walls.last().unwrap())
    );
    for rx in &receivers {
        ensure!(
            rx.received().len() == events,
            "every hook got every event once"
        );
    }
    Ok(())
}
