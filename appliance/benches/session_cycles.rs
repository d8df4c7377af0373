//! Session broker throughput: full cycles (start → active → detach → attach
//! → terminate) through HTTP against an appliance on 127.0.0.1 with the
//! scripted worker runtime, one at a time (the baseline: latency of one
//! cycle) and 200 at once. Checks that no session is lost or stuck. Then
//! the same 200 with a 3 s lease (a heartbeat a second) while two spinning
//! processes keep both cores busy: the case where heartbeats that waited
//! behind the database used to fail sessions as `worker_lost`.
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

    /// One cycle; `false` if the session failed on the way (it is then
    /// left as it is, for the count).
    async fn cycle(&self, resource: &str) -> bool {
        let started =
            self.call(reqwest::Method::POST, "/api/v1/sessions", Some(json!({"resource_id": resource}))).await;
        let id = started["session"]["id"].as_str().unwrap().to_owned();
        let mut pause = Duration::from_millis(2);
        loop {
            let session = self.call(reqwest::Method::GET, &format!("/api/v1/sessions/{id}"), None).await;
            if session["state"] == "active" {
                break;
            }
            if session["state"] == "failed" {
                return false;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
        for command in ["detach", "attach", "terminate"] {
            let path = format!("/api/v1/sessions/{id}/{command}");
            let response =
                self.0.http.post(format!("{}{path}", self.0.base)).bearer_auth(&self.0.token).send().await.unwrap();
            if !response.status().is_success() {
                return false;
            }
        }
        true
    }

    async fn resource(&self) -> String {
        let org = self.0.org.clone();
        self.call(
            reqwest::Method::POST,
            "/api/v1/resources",
            Some(json!({"organization_id": org, "name": "PC", "protocol": "rdp", "host": "pc1"})),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// `count` cycles at once; returns the wall time and how many failed.
    async fn concurrent(self: &std::sync::Arc<Self>, resource: &str, count: usize) -> (Duration, usize) {
        let started = Instant::now();
        let tasks: Vec<_> = (0..count)
            .map(|_| {
                let client = self.clone();
                let resource = resource.to_owned();
                tokio::spawn(async move { client.cycle(&resource).await })
            })
            .collect();
        let mut failed = 0;
        for task in tasks {
            if !task.await.unwrap() {
                failed += 1;
            }
        }
        (started.elapsed(), failed)
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let appliance = Appliance::start(&[("RAP_WORKER_SLOTS", "200"), ("RAP_WORKER_RUNTIME", "scripted")]).await;
        let client = std::sync::Arc::new(Client(appliance));
        let resource = client.resource().await;

        let sequential_cycles = 50;
        let started = Instant::now();
        for _ in 0..sequential_cycles {
            assert!(client.cycle(&resource).await, "a sequential cycle failed");
        }
        let sequential = started.elapsed();

        let concurrent_cycles = 200;
        let (concurrent, failed) = client.concurrent(&resource, concurrent_cycles).await;
        assert_eq!(failed, 0, "no session failed");
        let open = client
            .call(reqwest::Method::GET, "/api/v1/sessions?state=pending,starting,active,detached&limit=500", None)
            .await;
        assert_eq!(open["items"].as_array().unwrap().len(), 0, "no session lost or stuck");
        let Ok(Client(appliance)) = std::sync::Arc::try_unwrap(client) else { panic!("all cycles finished") };
        appliance.stop().await;

        // The same load with a 3 s lease while both cores are taken.
        let appliance = Appliance::start(&[
            ("RAP_WORKER_SLOTS", "200"),
            ("RAP_WORKER_RUNTIME", "scripted"),
            ("RAP_WORKER_LEASE_TTL", "3s"),
        ])
        .await;
        let client = std::sync::Arc::new(Client(appliance));
        let resource = client.resource().await;
        let spinners: Vec<std::process::Child> = (0..2)
            .map(|_| std::process::Command::new("sh").arg("-c").arg("while :; do :; done").spawn().unwrap())
            .collect();
        let (loaded, loaded_failed) = client.concurrent(&resource, concurrent_cycles).await;
        for mut spinner in spinners {
            let _ = spinner.kill();
            let _ = spinner.wait();
        }
        let lost = client.call(reqwest::Method::GET, "/api/v1/sessions?state=failed&limit=500", None).await;
        let worker_lost =
            lost["items"].as_array().unwrap().iter().filter(|session| session["failure_reason"] == "worker_lost").count();

        let per_second = |cycles: usize, elapsed: Duration| cycles as f64 / elapsed.as_secs_f64();
        let baseline = per_second(sequential_cycles, sequential);
        println!("session cycles (start, active, detach, attach, terminate) through HTTP, scripted worker");
        println!("| load | cycles | wall time | cycles/s | vs. baseline | failed |");
        println!("| --- | --- | --- | --- | --- | --- |");
        println!(
            "| baseline: one at a time | {sequential_cycles} | {:.2} s | {baseline:.1} | 1.0× | 0 |",
            sequential.as_secs_f64()
        );
        let parallel = per_second(concurrent_cycles, concurrent);
        println!(
            "| 200 concurrent | {concurrent_cycles} | {:.2} s | {parallel:.1} | {:.1}× | 0 |",
            concurrent.as_secs_f64(),
            parallel / baseline
        );
        let under_load = per_second(concurrent_cycles, loaded);
        println!(
            "| 200 concurrent, 3 s lease, both cores busy | {concurrent_cycles} | {:.2} s | {under_load:.1} | {:.1}× | {loaded_failed} ({worker_lost} worker_lost) |",
            loaded.as_secs_f64(),
            under_load / baseline
        );
        let Ok(Client(appliance)) = std::sync::Arc::try_unwrap(client) else { panic!("all cycles finished") };
        appliance.stop().await;
        assert_eq!(loaded_failed, 0, "no session may fail under load");
    });
}
