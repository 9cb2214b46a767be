//! What the host checks in a plugin's output before it goes anywhere: its
//! self-description, its findings (counts, sizes, scores), and the time and position of
//! each finding, which the host takes from the batch rather than from the guest.

use super::fault::FaultKind;
use crate::bindings::{Finding, PluginInfo};
use crate::limits::Limits;

/// Most actions a plugin may subscribe to.
pub const MAX_SUBSCRIBED_ACTIONS: usize = 1_000;
/// Longest subscribed action name, plugin name or version, in bytes.
pub const MAX_INFO_NAME_BYTES: usize = 256;
/// Longest plugin description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 1_000;
/// Longest configuration schema, in bytes.
pub const MAX_CONFIG_SCHEMA_BYTES: usize = 64 << 10;

/// Why a plugin's self-description is refused, if it is.
pub fn check_info(info: &PluginInfo) -> Result<(), String> {
    let too_long = |what: &str, len: usize, max: usize| {
        (len > max).then(|| format!("its {what} is {len} bytes, more than {max}"))
    };
    if let Some(why) = too_long("name", info.name.len(), MAX_INFO_NAME_BYTES)
        .or_else(|| too_long("version", info.version.len(), MAX_INFO_NAME_BYTES))
        .or_else(|| too_long("description", info.description.len(), MAX_DESCRIPTION_BYTES))
        .or_else(|| {
            too_long(
                "config schema",
                info.config_schema.len(),
                MAX_CONFIG_SCHEMA_BYTES,
            )
        })
    {
        return Err(why);
    }
    if info.actions.len() > MAX_SUBSCRIBED_ACTIONS {
        return Err(format!(
            "it subscribes to {} actions, more than {MAX_SUBSCRIBED_ACTIONS}",
            info.actions.len()
        ));
    }
    match info.actions.iter().find(|a| a.len() > MAX_INFO_NAME_BYTES) {
        Some(a) => Err(format!(
            "it subscribes to a {}-byte action name, more than {MAX_INFO_NAME_BYTES}",
            a.len()
        )),
        None => Ok(()),
    }
}

/// Why a call's findings are refused, if they are: more than allowed, strings too
/// long, a score outside 0..1.
pub fn check_findings(findings: &[Finding], limits: &Limits) -> Result<(), (FaultKind, String)> {
    if findings.len() > limits.findings_per_call {
        return Err((
            FaultKind::OutputLimit,
            format!(
                "returned {} findings, more than the {} allowed per call",
                findings.len(),
                limits.findings_per_call
            ),
        ));
    }
    let max = limits.string_bytes;
    for f in findings {
        let strings = [&f.subject, &f.rule, &f.summary]
            .into_iter()
            .chain(&f.evidence)
            .chain(f.attributes.iter().flat_map(|a| [&a.key, &a.value]));
        if let Some(s) = strings.into_iter().find(|s| s.len() > max) {
            return Err((
                FaultKind::OutputLimit,
                format!(
                    "returned a {}-byte string in a finding, more than the {max} allowed",
                    s.len()
                ),
            ));
        }
        if !(0.0..=1.0).contains(&f.score) {
            return Err((
                FaultKind::InvalidOutput,
                format!(
                    "returned a finding of rule {:?} with score {}, not a number from 0 to 1",
                    f.rule, f.score
                ),
            ));
        }
        if f.evidence.len() > limits.findings_per_call
            || f.attributes.len() > limits.findings_per_call
        {
            return Err((
                FaultKind::OutputLimit,
                "returned a finding with too many evidence ids or attributes".into(),
            ));
        }
    }
    Ok(())
}

/// Date each finding by the batch it came from, never by the guest's word: the latest
/// event time among its evidence in the batch, or, when none of its evidence is in the
/// batch (it rests on earlier events only), the batch's latest event time. So a finding
/// can neither be dated in the future (poisoning cooldowns and the hourly cap) nor
/// before the events that made it. Returns, per finding, the index in the batch of the
/// event it is dated from (at equal times the later one): its position in the order
/// decisions are made (see [`crate::pipeline::decide::DecisionOrder`]).
pub fn finding_times(
    findings: &mut [Finding],
    batch: &[u8],
) -> Result<Vec<usize>, aer_wire::DecodeError> {
    let events = aer_wire::decode_batch(batch)?;
    // The index of the latest event: at equal times, the later in the batch.
    let later = |a: usize, b: usize| {
        if (events[b].time_ms, b) > (events[a].time_ms, a) {
            b
        } else {
            a
        }
    };
    let latest = (0..events.len()).reduce(later).unwrap_or(0);
    let mut index: std::collections::HashMap<&str, usize> =
        std::collections::HashMap::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        // A repeated id (the host never sends one) counts at its latest time.
        let at = index.get(e.id).map_or(i, |&j| later(j, i));
        index.insert(e.id, at);
    }
    let mut positions = Vec::with_capacity(findings.len());
    for f in findings {
        let at = f
            .evidence
            .iter()
            .filter_map(|id| index.get(id.as_str()).copied())
            .reduce(later)
            .unwrap_or(latest);
        f.time_ms = events.get(at).map_or(aer_wire::time::MIN_MS, |e| e.time_ms);
        positions.push(at);
    }
    Ok(positions)
}
