//! Every error answer is `{"error": KIND, "message": SENTENCE}` with the one
//! status of its kind, also the answers axum makes itself (a body that is not
//! JSON, a wrong method).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use kith_api::types::ErrorBody;
use kith_node::DataDir;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_are_json_with_a_kind_and_a_sentence() {
    let temp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(temp.path().join("node"));
    let config = common::lone_node_config();
    let running = kith_api::up(dir.clone(), config).await.unwrap();
    let base = format!("http://{}", running.api_addr());
    let token = dir.api_token().unwrap();

    let answers = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let auth = format!("Bearer {token}");
        let read = |response: Result<ureq::http::Response<ureq::Body>, ureq::Error>| {
            let mut response = response.unwrap();
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .map(|value| value.to_str().unwrap().to_owned());
            let text = response.body_mut().read_to_string().unwrap();
            assert_eq!(
                content_type.as_deref(),
                Some("application/json"),
                "{status} {text}"
            );
            let body: ErrorBody = serde_json::from_str(&text).unwrap();
            (status, body.error, body.message)
        };
        vec![
            read(agent.get(format!("{base}/v1/status")).call()),
            read(
                agent
                    .get(format!("{base}/v1/no-such-thing"))
                    .header("Authorization", &auth)
                    .call(),
            ),
            read(
                agent
                    .get(format!("{base}/v1/stat?cap=kith:nonsense"))
                    .header("Authorization", &auth)
                    .call(),
            ),
            read(
                agent
                    .post(format!("{base}/v1/connect"))
                    .header("Authorization", &auth)
                    .header("Content-Type", "application/json")
                    .send("{not json"),
            ),
            read(
                agent
                    .get(format!("{base}/v1/connect"))
                    .header("Authorization", &auth)
                    .call(),
            ),
            read(
                agent
                    .post(format!("{base}/v1/connect"))
                    .header("Authorization", &auth)
                    .send_json(serde_json::json!({"addr": "not an address"})),
            ),
        ]
    })
    .await
    .unwrap();
    running.stop().await;

    let kinds: Vec<(u16, &str)> = answers
        .iter()
        .map(|(status, kind, _)| (*status, kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (401, "unauthorized"),
            (404, "not_found"),
            (400, "bad_request"),
            (400, "bad_request"),
            (405, "method_not_allowed"),
            (400, "bad_request"),
        ]
    );
    assert!(answers[0].2.starts_with("missing API token"), "{answers:?}");
    assert_eq!(answers[1].2, "no such API endpoint");
    assert!(
        answers[2].2.starts_with("not a valid capability"),
        "{answers:?}"
    );
    for (_, _, message) in &answers {
        assert!(
            !message.is_empty() && !message.contains('\n'),
            "{answers:?}"
        );
    }
}
