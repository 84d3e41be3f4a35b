//! `kith name publish | resolve | ls` and `kith mirror`: names and mirrors,
//! through the node's API (`/v1/names…`, `/v1/mirrors…`).

use kith_api::types::{MirrorRequest, Mirrors, MyNames, NameAnswer, PublishRequest};
use kith_base::ByteSize;
use kith_node::{Capability, MirrorInfo, Name};

use crate::client::ApiClient;

/// Checks a name's text before the node is asked.
fn parse_name(text: &str) -> anyhow::Result<Name> {
    text.parse::<Name>()
        .map_err(|error| anyhow::anyhow!("not a valid name: {error}"))
}

/// `kith name publish CAP [--label L]`: the name on stdout, what happened
/// on stderr.
pub(crate) fn publish(api: &ApiClient, cap: &str, label: Option<String>) -> anyhow::Result<String> {
    cap.trim()
        .parse::<Capability>()
        .map_err(|error| anyhow::anyhow!("not a valid capability: {error}"))?;
    if let Some(label) = &label {
        kith_base::name::check_label(label)?;
    }
    let answer: NameAnswer = api.post(
        "/v1/names/publish",
        &PublishRequest {
            capability: cap.trim().to_owned(),
            label,
        },
    )?;
    let stored_on = answer.stored_on.unwrap_or(0);
    if stored_on == 0 {
        eprintln!(
            "published sequence {} here only: no peer took the record yet (the node stores it \
             again every hour, and `kith name resolve` works on this node)",
            answer.sequence
        );
    } else {
        eprintln!(
            "published sequence {} on {stored_on} of {} peer(s)",
            answer.sequence,
            answer.asked.unwrap_or(stored_on)
        );
    }
    Ok(answer.name)
}

/// `kith name resolve NAME`: the capability, or the record as JSON.
pub(crate) fn resolve(
    api: &ApiClient,
    name: &str,
    fresh: bool,
    json: bool,
) -> anyhow::Result<String> {
    let name = parse_name(name)?;
    let answer: NameAnswer = api.get(&format!("/v1/names/resolve?name={name}&fresh={fresh}"))?;
    Ok(if json {
        serde_json::to_string(&answer)?
    } else {
        answer.capability
    })
}

/// `kith name ls`: one line per name.
pub(crate) fn list(api: &ApiClient) -> anyhow::Result<Vec<String>> {
    let mine: MyNames = api.get("/v1/names")?;
    Ok(mine
        .names
        .into_iter()
        .map(|name| {
            format!(
                "{}\t{}\t{}\t{}",
                name.label.as_deref().unwrap_or("-"),
                name.name,
                name.sequence.map_or("-".to_owned(), |seq| seq.to_string()),
                name.capability.as_deref().unwrap_or("-"),
            )
        })
        .collect())
}

/// Checks a mirror target before the node is asked.
fn check_target(target: &str) -> anyhow::Result<()> {
    let target = target.trim();
    if target.starts_with(kith_base::capability::PREFIX) {
        target
            .parse::<Capability>()
            .map_err(|error| anyhow::anyhow!("not a valid capability: {error}"))?;
    } else {
        parse_name(target)?;
    }
    Ok(())
}

/// `kith mirror NAME|CAP`: one line once the first copy is made.
pub(crate) fn mirror(api: &ApiClient, target: &str) -> anyhow::Result<String> {
    check_target(target)?;
    let info: MirrorInfo = api.post_slow(
        "/v1/mirrors",
        &MirrorRequest {
            target: target.trim().to_owned(),
        },
    )?;
    if let Some(error) = &info.error {
        anyhow::bail!(
            "mirroring {}: {error} (the node will try again)",
            info.target
        );
    }
    Ok(describe(&info))
}

/// `kith mirror ls`.
pub(crate) fn list_mirrors(api: &ApiClient, json: bool) -> anyhow::Result<Vec<String>> {
    let mirrors: Mirrors = api.get("/v1/mirrors")?;
    mirrors
        .mirrors
        .iter()
        .map(|info| {
            Ok(if json {
                serde_json::to_string(info)?
            } else {
                describe(info)
            })
        })
        .collect()
}

/// `kith mirror rm NAME|CAP`.
pub(crate) fn remove_mirror(api: &ApiClient, target: &str) -> anyhow::Result<String> {
    check_target(target)?;
    let _: serde_json::Value = api.post(
        "/v1/mirrors/rm",
        &MirrorRequest {
            target: target.trim().to_owned(),
        },
    )?;
    Ok(format!(
        "no longer mirroring {}; what was copied stays as cached copies",
        target.trim()
    ))
}

/// One mirror as a line: target, sequence, files, bytes, state.
fn describe(info: &MirrorInfo) -> String {
    let state = match (&info.error, &info.held) {
        (Some(error), _) => format!("failing: {error}"),
        (None, Some(_)) => "complete".to_owned(),
        (None, None) => "copying".to_owned(),
    };
    format!(
        "{}\tsequence {}\t{} files\t{}\t{state}",
        info.target,
        info.sequence.map_or("-".to_owned(), |seq| seq.to_string()),
        info.files,
        ByteSize(info.bytes),
    )
}
