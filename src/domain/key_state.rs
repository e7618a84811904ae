//! The one key state machine (DESIGN §3 rule 2): a key's states, the evidence that can move it, and
//! [`decide`], the only place that says what evidence does. Checks, the proxy's writer and the admin's
//! actions all go through it; the SQL that stores a decision carries its result, not the rule.
//!
//! Evidence about a key (401, a banned key, a balance check at or below the minimum) moves the key.
//! Evidence about a *model* on a key (that model's rate limit, a model the account may not use, an
//! answer saying one request could not be paid) never does: it blocks the (key, model) pair, and the
//! key keeps serving every other model.

/// A key's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyStatus {
    /// Never checked: not routed.
    Unchecked,
    /// Valid, with a balance above the minimum: routed for every model.
    Active,
    /// Valid, without money: routed only for free models ("free models only").
    Depleted,
    /// The upstream refuses the key itself: never routed.
    Invalid,
    /// Every model is rate-limited on this key until a time (a 429 for a request without a model).
    Cooling,
    /// Taken out by the admin; keeps its state underneath (`previous_status`).
    Disabled,
}

impl KeyStatus {
    pub const ALL: [KeyStatus; 6] =
        [Self::Unchecked, Self::Active, Self::Depleted, Self::Invalid, Self::Cooling, Self::Disabled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unchecked => "unchecked",
            Self::Active => "active",
            Self::Depleted => "depleted",
            Self::Invalid => "invalid",
            Self::Cooling => "cooling",
            Self::Disabled => "disabled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw.trim())
    }

    /// A stored status; an unknown text (a newer version's state) reads as `unchecked`, never routed.
    pub fn from_stored(raw: &str) -> Self {
        Self::parse(raw).unwrap_or(Self::Unchecked)
    }

    /// Whether the proxy loads the key at all (for paid models, or free models only).
    pub fn is_valid_for_routing(self) -> bool {
        matches!(self, Self::Active | Self::Cooling | Self::Depleted)
    }
}

/// A status as stored (columns are text on both backends; rows read it with
/// `#[diesel(deserialize_as = String)]`, so no row carries the text itself).
impl From<String> for KeyStatus {
    fn from(raw: String) -> Self {
        Self::from_stored(&raw)
    }
}

/// Why a (key, model) pair is out, and so how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockKind {
    /// A per-minute (or per-hour) limit of that model: `Retry-After`, or `cooldown_s`.
    RateLimit,
    /// A daily limit (RPD, TPD, IPD) of that model: until the upstream's next midnight.
    DailyLimit,
    /// The account may not use the model (real-name verification, a model disabled for it): until the
    /// key's next check.
    Refused,
    /// One request for that model could not be paid (a `Pro/` model that gift balance cannot pay, a
    /// large `max_tokens`): until the key's next check, which decides whether the key has money at all.
    NoMoney,
}

impl BlockKind {
    pub const ALL: [BlockKind; 4] = [Self::RateLimit, Self::DailyLimit, Self::Refused, Self::NoMoney];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimit => "rate_limit",
            Self::DailyLimit => "daily_limit",
            Self::Refused => "refused",
            Self::NoMoney => "no_money",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }

    /// Whether a block of this kind outlives a restart and reaches other instances (written to the
    /// database). Minute limits are over before anyone else would read them.
    pub fn is_persisted(self) -> bool {
        !matches!(self, Self::RateLimit)
    }

    /// Whether the key's next check ends a block of this kind.
    pub fn ends_at_check(self) -> bool {
        matches!(self, Self::Refused | Self::NoMoney)
    }
}

/// One (key, model) pair out of rotation.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelBlock {
    /// The model (`""`: requests without a model).
    pub model: Box<str>,
    pub kind: BlockKind,
    pub until: i64,
    /// When it was decided.
    pub at: i64,
    /// Whether the upstream asked for it (its own `Retry-After`): never given back.
    pub hinted: bool,
    pub reason: String,
}

/// Blocks that last "until the next check" end at the latest this long after they began, so a key
/// whose checks are off is asked again one day later.
pub const UNTIL_CHECK_MAX_MS: i64 = 24 * 3_600_000;

/// What was learned about a key.
#[derive(Debug, Clone, PartialEq)]
pub enum Evidence {
    /// A balance check answered: `total` against the minimum balance in force.
    Balance {
        total: f64,
        min_balance: f64,
    },
    /// The upstream refuses the key itself (401, a banned or invalid key).
    KeyInvalid,
    /// A rate limit of one model (`Some`) or, for a request without a model, of the key (`None`),
    /// until `until`.
    RateLimited {
        model: Option<String>,
        daily: bool,
        until: i64,
    },
    /// The account may not use this model.
    ModelRefused {
        model: String,
        until: i64,
    },
    /// One request for this model could not be paid.
    NoMoney {
        model: String,
        until: i64,
    },
    /// The key's rate-limit cooling is over.
    CoolingEnded,
    AdminDisable,
    /// The admin enables the key; it returns to the state it had when disabled.
    AdminEnable {
        previous: Option<KeyStatus>,
    },
    /// A 5xx, a timeout, a connection error, an unreadable answer: nothing about the key.
    Transient,
}

/// What to do with a key because of one piece of evidence.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// Nothing changes.
    Keep,
    /// The key moves to another state (`cooling_until` for `cooling`).
    Move { to: KeyStatus, cooling_until: Option<i64> },
    /// The key keeps its state; the (key, model) pair is out until `until`.
    Block { model: String, kind: BlockKind, until: i64 },
}

impl Transition {
    fn to(to: KeyStatus) -> Self {
        Self::Move { to, cooling_until: None }
    }
}

/// The one rule: what `evidence` does to a key in state `current`.
pub fn decide(current: KeyStatus, evidence: &Evidence) -> Transition {
    use KeyStatus::*;
    let moved = |to: KeyStatus| if to == current { Transition::Keep } else { Transition::to(to) };
    match (current, evidence) {
        // The admin's decision stands until the admin changes it.
        (Disabled, Evidence::AdminEnable { previous }) => {
            // A cooling that was under way when the key was disabled is long over: check it again.
            let back = match previous {
                Some(s @ (Unchecked | Active | Depleted | Invalid)) => *s,
                Some(Cooling | Disabled) | None => Unchecked,
            };
            Transition::to(back)
        }
        (Disabled, _) | (_, Evidence::AdminEnable { .. }) => Transition::Keep,
        (_, Evidence::AdminDisable) => Transition::to(Disabled),
        (_, Evidence::Balance { total, min_balance }) => moved(if total > min_balance { Active } else { Depleted }),
        (_, Evidence::KeyInvalid) => moved(Invalid),
        (_, Evidence::Transient) => Transition::Keep,
        (Cooling, Evidence::CoolingEnded) => Transition::to(Active),
        (_, Evidence::CoolingEnded) => Transition::Keep,
        // Facts about a model change nothing for a key that is not routed anyway.
        (
            Invalid | Unchecked,
            Evidence::RateLimited { .. } | Evidence::ModelRefused { .. } | Evidence::NoMoney { .. },
        ) => Transition::Keep,
        (_, Evidence::RateLimited { model: Some(model), daily, until }) => Transition::Block {
            model: model.clone(),
            kind: if *daily { BlockKind::DailyLimit } else { BlockKind::RateLimit },
            until: *until,
        },
        // Without a model, the limit is the key's: every model waits (a depleted key stays depleted
        // and simply waits too, as a model block on "").
        (Active | Cooling, Evidence::RateLimited { model: None, until, .. }) => {
            Transition::Move { to: Cooling, cooling_until: Some(*until) }
        }
        (Depleted, Evidence::RateLimited { model: None, daily, until }) => Transition::Block {
            model: String::new(),
            kind: if *daily { BlockKind::DailyLimit } else { BlockKind::RateLimit },
            until: *until,
        },
        (_, Evidence::ModelRefused { model, until }) => {
            Transition::Block { model: model.clone(), kind: BlockKind::Refused, until: *until }
        }
        (_, Evidence::NoMoney { model, until }) => {
            Transition::Block { model: model.clone(), kind: BlockKind::NoMoney, until: *until }
        }
    }
}

/// For a set-based statement over many keys: the state each current state moves to under `evidence`
/// (only the states that move). The SQL then carries this table as data.
pub fn moves(evidence: &Evidence) -> Vec<(KeyStatus, KeyStatus)> {
    KeyStatus::ALL
        .into_iter()
        .filter_map(|from| match decide(from, evidence) {
            Transition::Move { to, .. } => Some((from, to)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::KeyStatus::*;
    use super::*;

    fn block(model: &str, kind: BlockKind, until: i64) -> Transition {
        Transition::Block { model: model.into(), kind, until }
    }

    #[test]
    fn balances_move_every_state_but_disabled() {
        let rich = Evidence::Balance { total: 5.0, min_balance: 0.0 };
        let broke = Evidence::Balance { total: 0.0, min_balance: 0.0 };
        let expected = [
            (Unchecked, Transition::to(Active), Transition::to(Depleted)),
            (Active, Transition::Keep, Transition::to(Depleted)),
            (Depleted, Transition::to(Active), Transition::Keep),
            (Invalid, Transition::to(Active), Transition::to(Depleted)),
            (Cooling, Transition::to(Active), Transition::to(Depleted)),
            (Disabled, Transition::Keep, Transition::Keep),
        ];
        for (from, with_money, without) in expected {
            assert_eq!(decide(from, &rich), with_money, "{from:?} rich");
            assert_eq!(decide(from, &broke), without, "{from:?} broke");
        }
        assert_eq!(decide(Active, &Evidence::Balance { total: 1.0, min_balance: 1.0 }), Transition::to(Depleted));
    }

    #[test]
    fn a_key_invalid_answer_kills_every_routed_state_and_nothing_disabled() {
        for from in KeyStatus::ALL {
            let expected = match from {
                Invalid | Disabled => Transition::Keep,
                _ => Transition::to(Invalid),
            };
            assert_eq!(decide(from, &Evidence::KeyInvalid), expected, "{from:?}");
        }
    }

    #[test]
    fn model_evidence_blocks_the_pair_and_never_moves_the_key() {
        let per_minute = Evidence::RateLimited { model: Some("m".into()), daily: false, until: 60 };
        let daily = Evidence::RateLimited { model: Some("m".into()), daily: true, until: 900 };
        let refused = Evidence::ModelRefused { model: "Pro/m".into(), until: 5 };
        let unpaid = Evidence::NoMoney { model: "Pro/m".into(), until: 6 };
        for from in [Active, Cooling, Depleted] {
            assert_eq!(decide(from, &per_minute), block("m", BlockKind::RateLimit, 60), "{from:?}");
            assert_eq!(decide(from, &daily), block("m", BlockKind::DailyLimit, 900), "{from:?}");
            assert_eq!(decide(from, &refused), block("Pro/m", BlockKind::Refused, 5), "{from:?}");
            assert_eq!(decide(from, &unpaid), block("Pro/m", BlockKind::NoMoney, 6), "{from:?}");
        }
        for from in [Invalid, Unchecked, Disabled] {
            for e in [&per_minute, &daily, &refused, &unpaid] {
                assert_eq!(decide(from, e), Transition::Keep, "{from:?} {e:?}");
            }
        }
    }

    #[test]
    fn a_rate_limit_without_a_model_cools_the_key_and_cooling_ends() {
        let limit = Evidence::RateLimited { model: None, daily: false, until: 70 };
        assert_eq!(decide(Active, &limit), Transition::Move { to: Cooling, cooling_until: Some(70) });
        assert_eq!(decide(Cooling, &limit), Transition::Move { to: Cooling, cooling_until: Some(70) });
        assert_eq!(decide(Depleted, &limit), block("", BlockKind::RateLimit, 70));
        assert_eq!(decide(Cooling, &Evidence::CoolingEnded), Transition::to(Active));
        for from in [Unchecked, Active, Depleted, Invalid, Disabled] {
            assert_eq!(decide(from, &Evidence::CoolingEnded), Transition::Keep, "{from:?}");
        }
    }

    #[test]
    fn transient_failures_change_nothing() {
        for from in KeyStatus::ALL {
            assert_eq!(decide(from, &Evidence::Transient), Transition::Keep, "{from:?}");
        }
    }

    #[test]
    fn the_admin_disables_anything_and_enabling_returns_to_the_state_before() {
        for from in KeyStatus::ALL {
            let expected = if from == Disabled { Transition::Keep } else { Transition::to(Disabled) };
            assert_eq!(decide(from, &Evidence::AdminDisable), expected, "{from:?}");
            if from != Disabled {
                assert_eq!(decide(from, &Evidence::AdminEnable { previous: None }), Transition::Keep);
            }
        }
        let enable = |previous| decide(Disabled, &Evidence::AdminEnable { previous });
        assert_eq!(enable(Some(Active)), Transition::to(Active));
        assert_eq!(enable(Some(Depleted)), Transition::to(Depleted));
        assert_eq!(enable(Some(Invalid)), Transition::to(Invalid));
        assert_eq!(enable(Some(Cooling)), Transition::to(Unchecked), "a cooling from back then is over; check again");
        assert_eq!(enable(None), Transition::to(Unchecked));
        assert_eq!(enable(Some(Disabled)), Transition::to(Unchecked));
    }

    #[test]
    fn moves_is_the_table_decide_gives() {
        assert_eq!(
            moves(&Evidence::AdminDisable),
            [(Unchecked, Disabled), (Active, Disabled), (Depleted, Disabled), (Invalid, Disabled), (Cooling, Disabled)]
        );
        assert_eq!(moves(&Evidence::CoolingEnded), [(Cooling, Active)]);
        assert!(moves(&Evidence::Transient).is_empty());
    }

    #[test]
    fn statuses_and_kinds_round_trip() {
        for s in KeyStatus::ALL {
            assert_eq!(KeyStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(KeyStatus::from_stored("someday"), Unchecked);
        for k in BlockKind::ALL {
            assert_eq!(BlockKind::parse(k.as_str()), Some(k));
        }
        assert!(!BlockKind::RateLimit.is_persisted() && BlockKind::DailyLimit.is_persisted());
        assert!(BlockKind::Refused.ends_at_check() && !BlockKind::DailyLimit.ends_at_check());
    }
}
