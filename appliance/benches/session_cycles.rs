//! Session broker throughput: full cycles (start → active → detach → attach
//! → terminate) through HTTP against an appliance on 127.0.0.1 with the
//! scripted worker runtime, one at a time (the baseline: latency of one
//! cycle) and 200 at once. Checks that no session is lost or stuck.
//!
//! Run: `cargo bench -p rap-appliance --bench session_cycles`

#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;

use support::Appliance;

struct Client(Appliance);

impl Client {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.0.call(method, path, body).await
    }

    async fn cycle(&self, resource: &str) {
        let started =
            self.call(reqwest::Method::POST, "/api/v1/sessions", Some(json!({"resource_id": resource}))).await;
        let id = started["session"]["id"].as_str().unwrap().to_owned();
        let mut pause = Duration::from_millis(2);
        loop {
            let session = self.call(reqwest::Method::GET, &format!("/api/v1/sessions/{id}"), None).await;
            if session["state"] == "active" {
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
        for command in ["detach", "attach", "terminate"] {
            self.call(reqwest::Method::POST, &format!("/api/v1/sessions/{id}/{command}"), None).await;
        }
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let appliance = Appliance::start(&[("RAP_WORKER_SLOTS", "200"), ("RAP_WORKER_RUNTIME", "scripted")]).await;
        let org = appliance.org.clone();
        let client = std::sync::Arc::new(Client(appliance));
        let resource = client
            .call(
                reqwest::Method::POST,
                "/api/v1/resources",
                Some(json!({"organization_id": org, "name": "PC", "protocol": "rdp", "host": "pc1"})),
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();

        let sequential_cycles = 50;
        let started = Instant::now();
        for _ in 0..sequential_cycles {
            client.cycle(&resource).await;
        }
        let sequential = started.elapsed();

        let concurrent_cycles = 200;
        let started = Instant::now();
        let tasks: Vec<_> = (0..concurrent_cycles)
            .map(|_| {
                let client = client.clone();
                let resource = resource.clone();
                tokio::spawn(async move { client.cycle(&resource).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let concurrent = started.elapsed();

        let open = client
            .call(reqwest::Method::GET, "/api/v1/sessions?state=pending,starting,active,detached&limit=500", None)
            .await;
        assert_eq!(open["items"].as_array().unwrap().len(), 0, "no session lost or stuck");
        let per_second = |cycles: u32, elapsed: Duration| f64::from(cycles) / elapsed.as_secs_f64();
        let baseline = per_second(sequential_cycles, sequential);
        println!("session cycles (start, active, detach, attach, terminate) through HTTP, scripted worker");
        println!("| load | cycles | wall time | cycles/s | vs. baseline |");
        println!("| --- | --- | --- | --- | --- |");
        println!(
            "| baseline: one at a time | {sequential_cycles} | {:.2} s | {baseline:.1} | 1.0× |",
            sequential.as_secs_f64()
        );
        let parallel = per_second(concurrent_cycles, concurrent);
        println!(
            "| 200 concurrent | {concurrent_cycles} | {:.2} s | {parallel:.1} | {:.1}× |",
            concurrent.as_secs_f64(),
            parallel / baseline
        );
        let Ok(Client(appliance)) = std::sync::Arc::try_unwrap(client) else { panic!("all cycles finished") };
        appliance.stop().await;
    });
}
