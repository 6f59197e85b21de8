"""A synthetic e-commerce world with a known click probability: the embedded default dataset.

Users (age, gender, city tier, hidden interests) see items (category, brand, price) at a feed position.
Each impression stores its true click probability `true_ctr`, so a model's AUC can be compared with the
best achievable one (`oracle_auc`). The true logit is a sum of effects a feature-based ranking model can
learn from user_id, item_id, age, gender, city_tier, category_id, brand_id, price and position:

    logit = base + item quality (brand + item) + user bias + city tier
          + affinity(age band x gender x category) + interest_user . vector_category
          + price sensitivity(age band) x standardized log price + position bias

With `interest_effect > 0` a planted sequence effect joins the logit: a per-user interest category that
changes every `interest_days` (see `_interest_phases`), visible only through the user's recent clicks.
With `recency_effect > 0` the logit also rises with the share of the user's last `recency_window` clicks in
the item's category (`data/recency.py`: clicks drawn in time order, the same uniform draws as without it).
`buy` and `fav` are drawn only for clicks. Two more options, off by default (the default world is unchanged), plant
known answers for feature selection: `cross_strength` adds a pure category_id x city_tier interaction (no
main effect, so only a cross or an interaction model can use it), `user_taste` adds a per-user x category
taste (only an id-level cross can memorise it, and it says nothing about unseen users) and `noise_columns`
adds impression columns `noise_1..` that never affect a click (each draws from its own generator). Everything else is
vectorized numpy from one seeded generator.
At the SyntheticConfig() defaults (1M impressions): CTR 0.090, oracle AUC 0.760, about 1 s to generate.

With `purchase: true` a second objective is added for multi-task models (the columns above stay bit for
bit the same: it draws from its own generator). A click converts with probability

    sigmoid(base' + CVR_SHARED x affinity(age band x gender x category)      shared with click
            + brand conversion effect + CVR_PRICE(age band) x log price)     its own

so `purchase` (which implies `click`) and `true_ctcvr` = true_ctr x true cvr are over all impressions,
as ESMM models them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from recforge.config.schema import SyntheticConfig
from recforge.data.raw import RawTables
from recforge.data.recency import recency_clicks

log = logging.getLogger(__name__)

AGE_BAND_EDGES = np.array([25, 35, 45, 55])  # -> 5 bands: <25, 25-34, 35-44, 45-54, 55+
PRICE_SENSITIVITY = np.array([-0.55, -0.35, -0.15, -0.25, -0.45])  # per age band, per sd of log price
CITY_TIER_EFFECT = np.array([0.15, 0.05, -0.05, -0.15])  # tiers 1..4
TARGET_CTR = 0.09
TARGET_CVR = 0.05  # mean conversion probability over impressions (clicked ones convert more)
CVR_SHARED = 0.8  # weight of the click's demographic x category affinity in the conversion logit
SD_BRAND_CVR = 0.6  # per-brand conversion effect, independent of the brand's click quality
CVR_PRICE = np.array([-0.9, -0.7, -0.3, -0.5, -0.8])  # per age band, per sd of log price
# Spread of each logit term. Most of the signal sits in shared, observable effects (brand, demographics x
# category, price x age, position) so a ranking model can learn it from a few million rows; per-item and
# per-user terms are small, as their estimates from ~100 rows each are mostly noise (measured: with
# SD_ITEM 0.45 and SD_USER_BIAS 0.15 a DeepFM trailed the oracle by 0.03 AUC at 1M impressions).
SD_ITEM, SD_BRAND = 0.1, 0.45
SD_USER_BIAS, SD_INTEREST = 0.1, 0.04
SD_AFFINITY = (0.5, 0.5, 0.2)  # gender x category, age band x category, band x gender x category
LATENT_DIM = 4
N_POSITIONS = 20
POSITION_BIAS = -0.35 * np.log(np.arange(1, N_POSITIONS + 1))  # logit effect of each feed position
RECENCY_CALIBRATION_STEPS = 6  # simulated passes that set the intercept of a world with recency
INTEREST_FEED_SHARE = 0.3  # share of a user's feed showing the current interest (when interest_effect > 0)
START_TS = 1_704_067_200  # 2024-01-01 00:00:00 UTC
DAYS = 30
HOUR_WEIGHTS = np.array(
    [2, 1, 1, 1, 1, 1, 2, 4, 6, 6, 6, 6, 7, 7, 6, 6, 6, 7, 8, 10, 11, 10, 8, 5], dtype=float
)  # more traffic in the evening


@dataclass
class _Users:
    age: np.ndarray
    band: np.ndarray
    gender: np.ndarray  # 0 = F, 1 = M
    tier: np.ndarray  # 0..3 (city tier 1..4)
    activity: np.ndarray  # sampling weight
    bias: np.ndarray
    interest: np.ndarray  # [U, K]
    buy_bias: np.ndarray


@dataclass
class _Items:
    category: np.ndarray
    brand: np.ndarray
    price: np.ndarray
    price_z: np.ndarray  # log price standardized over the catalog (what a price feature shows)
    quality: np.ndarray  # brand + item effect on the logit
    exposure: np.ndarray  # sampling weight (Zipf-like, correlated with quality)


def _users(rng: np.random.Generator, n: int) -> _Users:
    age = np.clip(np.round(16 + rng.gamma(4.0, 4.5, n)), 16, 75).astype(np.int64)
    return _Users(
        age=age,
        band=np.searchsorted(AGE_BAND_EDGES, age, side="right"),
        gender=(rng.random(n) < 0.45).astype(np.int64),
        tier=rng.choice(4, size=n, p=[0.15, 0.30, 0.30, 0.25]),
        activity=rng.lognormal(0.0, 1.0, n),
        bias=rng.normal(0.0, SD_USER_BIAS, n),
        interest=rng.normal(0.0, SD_INTEREST, (n, LATENT_DIM)),
        buy_bias=rng.normal(0.0, 0.5, n),
    )


def _items(rng: np.random.Generator, n: int, n_categories: int) -> _Items:
    cat_share = 1.0 / np.arange(1, n_categories + 1) ** 0.7
    category = rng.choice(n_categories, size=n, p=cat_share / cat_share.sum())
    # brands live inside one category; every category has at least one brand
    n_brands = max(2 * n_categories, n // 25)
    brand_cat = np.concatenate([np.arange(n_categories), rng.choice(n_categories, n_brands - n_categories)])
    brand_cat.sort()
    first = np.searchsorted(brand_cat, np.arange(n_categories))
    count = np.bincount(brand_cat, minlength=n_categories)
    brand = first[category] + (rng.random(n) * count[category]).astype(np.int64)
    log_mu = rng.uniform(np.log(8.0), np.log(400.0), n_categories)
    log_sd = 0.5
    log_price = rng.normal(log_mu[category], log_sd)
    quality = rng.normal(0.0, SD_BRAND, n_brands)[brand] + rng.normal(0.0, SD_ITEM, n)
    # better items are shown more: exposure rank follows quality plus noise
    rank = np.argsort(np.argsort(-(quality + rng.normal(0.0, 0.6, n))))
    return _Items(
        category=category,
        brand=brand,
        price=np.round(np.exp(log_price), 2),
        price_z=(log_price - log_price.mean()) / log_price.std(),
        quality=quality,
        exposure=1.0 / (rank + 10.0) ** 1.1,
    )


def _timestamps(rng: np.random.Generator, n: int) -> np.ndarray:
    day = rng.integers(0, DAYS, n)
    hour = rng.choice(24, size=n, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
    return START_TS + day * 86_400 + hour * 3_600 + rng.integers(0, 3_600, n)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def calibrate_intercept(logit: np.ndarray, target: float) -> float:
    """The intercept that makes the mean click probability equal `target` (a few Newton steps)."""
    base = float(np.log(target / (1 - target)))
    for _ in range(8):
        p = sigmoid(logit + base)
        base -= (p.mean() - target) / max((p * (1 - p)).mean(), 1e-9)
    return base


@dataclass
class World:
    """The entities and effects one seed draws before any impression (users, items, category effects)."""

    users: _Users
    items: _Items
    cat_vec: np.ndarray  # [C, LATENT_DIM]
    affinity: np.ndarray  # [age band, gender, C]


def draw_world(cfg: SyntheticConfig, rng: np.random.Generator) -> World:
    """The first draws of `rng` (seeded with cfg.seed): the same for the in-memory and the chunked world."""
    users = _users(rng, cfg.n_users)
    items = _items(rng, cfg.n_items, cfg.n_categories)
    cat_vec, affinity = _category_effects(rng, cfg.n_categories)
    return World(users, items, cat_vec, affinity)


def impression_logit(
    cfg: SyntheticConfig, world: World, u: np.ndarray, i: np.ndarray, pos: np.ndarray, interest: np.ndarray | float
) -> np.ndarray:
    """The true click logit of impressions (user u, item i, position pos) before the intercept."""
    users, items = world.users, world.items
    c, band = items.category[i], users.band[u]
    logit = (
        items.quality[i]
        + users.bias[u]
        + CITY_TIER_EFFECT[users.tier[u]]
        + world.affinity[band, users.gender[u], c]
        + np.einsum("nk,nk->n", users.interest[u], world.cat_vec[c])
        + PRICE_SENSITIVITY[band] * items.price_z[i]
        + POSITION_BIAS[pos]
        + interest
    )
    if cfg.cross_strength > 0:
        logit = logit + planted_cross(cfg.seed, cfg.n_categories, cfg.cross_strength)[c, users.tier[u]]
    if cfg.user_taste > 0:
        logit = logit + user_taste(cfg.seed, cfg.n_users, cfg.n_categories, cfg.user_taste)[u, c]
    return logit


def draw_engagement(
    rng: np.random.Generator, world: World, u: np.ndarray, i: np.ndarray, click: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(buy, fav) of impressions, drawn only for clicks: the draws after the clicks'."""
    users, items = world.users, world.items
    mean_log_price = np.log(items.price).mean()
    p_buy = sigmoid(-1.2 - 0.6 * (np.log(items.price[i]) - mean_log_price) + users.buy_bias[u])
    buy = click & (rng.random(len(u)) < p_buy)
    p_fav = sigmoid(-1.8 + world.affinity[users.band[u], users.gender[u], items.category[i]])
    return buy, click & (rng.random(len(u)) < p_fav)


def draw_placement(rng: np.random.Generator, world: World, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user, item, position) of `n` impressions: users by activity, items by exposure, positions by rank."""
    u = rng.choice(len(world.users.age), size=n, p=world.users.activity / world.users.activity.sum())
    i = rng.choice(len(world.items.price), size=n, p=world.items.exposure / world.items.exposure.sum())
    return u, i, rng.choice(N_POSITIONS, size=n, p=position_weights())


def generate_synthetic(cfg: SyntheticConfig) -> RawTables:
    """Users, items and impressions (with `true_ctr`, `click`, `buy`, `fav`) for one seeded world."""
    rng = np.random.default_rng(cfg.seed)
    n = cfg.n_impressions
    world = draw_world(cfg, rng)
    users, items = world.users, world.items
    u, i, pos = draw_placement(rng, world, n)
    ts = _timestamps(rng, n)
    i, interest = _interest_phases(cfg, u, i, ts, items)
    c = items.category[i]
    logit = impression_logit(cfg, world, u, i, pos, interest)
    ctr, click = _clicks(cfg, logit, rng.random(n), u, c, ts)
    buy, fav = draw_engagement(rng, world, u, i, click)

    order = np.argsort(ts, kind="stable")
    columns = {
        "user_id": (u + 1)[order],
        "item_id": (i + 1)[order],
        "timestamp": ts[order],
        "position": (pos + 1)[order],
        "true_ctr": ctr[order],
        "click": click[order].astype(np.int64),
        "buy": buy[order].astype(np.int64),
        "fav": fav[order].astype(np.int64),
    }
    if cfg.purchase:
        band = users.band[u]
        affinity = world.affinity[band, users.gender[u], c]
        cvr = _conversion(np.random.default_rng([cfg.seed, 1]), items, affinity, band, i)
        purchase = click & (np.random.default_rng([cfg.seed, 2]).random(n) < cvr)
        columns["true_ctcvr"] = (ctr * cvr)[order]
        columns["purchase"] = purchase[order].astype(np.int64)
        log.info("synthetic world: purchase rate %.4f (%.3f per click)", purchase.mean(), purchase.sum() / click.sum())
    impressions = pa.table(columns)
    for k, values in enumerate(noise_columns(cfg.seed, cfg.noise_columns, n), start=1):
        impressions = impressions.append_column(f"noise_{k}", pa.array(values[order]))
    user_table, item_table = entity_tables(users, items)
    log.info("synthetic world: %d users, %d items, %d impressions, ctr %.4f", cfg.n_users, cfg.n_items, n, click.mean())
    return RawTables(behavior=impressions, users=user_table, items=item_table, origin=f"synthetic(seed={cfg.seed})")


def _clicks(
    cfg: SyntheticConfig, logit: np.ndarray, draws: np.ndarray, u: np.ndarray, c: np.ndarray, ts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(true click probability, clicks) at mean TARGET_CTR. With `recency_effect` clicks are drawn in time
    order and raise later ones, so the intercept is found by simulating: damped Newton steps on the drawn world."""
    base = calibrate_intercept(logit, TARGET_CTR)
    if cfg.recency_effect == 0:
        ctr = sigmoid(logit + base)
        return ctr, draws < ctr
    effect, window = cfg.recency_effect, cfg.recency_window
    for _ in range(RECENCY_CALIBRATION_STEPS):
        term, _ = recency_clicks(u, c, ts, logit + base, draws, effect, window)
        p = sigmoid(logit + base + term)
        base -= 0.5 * (p.mean() - TARGET_CTR) / max((p * (1 - p)).mean(), 1e-9)
    term, click = recency_clicks(u, c, ts, logit + base, draws, effect, window)
    return sigmoid(logit + base + term), click


def _category_effects(rng: np.random.Generator, n_c: int) -> tuple[np.ndarray, np.ndarray]:
    """Category vectors (matched by user interests) and affinity by (age band, gender, category)."""
    cat_vec = rng.normal(0.0, 1.0, (n_c, LATENT_DIM))
    affinity = (
        rng.normal(0.0, SD_AFFINITY[0], (1, 2, n_c))
        + rng.normal(0.0, SD_AFFINITY[1], (5, 1, n_c))
        + rng.normal(0.0, SD_AFFINITY[2], (5, 2, n_c))
    )
    return cat_vec, affinity


def entity_tables(users: _Users, items: _Items) -> tuple[pa.Table, pa.Table]:
    """The user and item tables (ids from 1) of the world's users and items."""
    user_table = pa.table(
        {
            "user_id": np.arange(1, len(users.age) + 1),
            "age": users.age,
            "gender": pa.array(np.where(users.gender == 1, "M", "F"), pa.string()),
            "city_tier": users.tier + 1,
        }
    )
    item_table = pa.table(
        {
            "item_id": np.arange(1, len(items.price) + 1),
            "category_id": items.category + 1,
            "brand_id": items.brand + 1,
            "price": items.price,
        }
    )
    return user_table, item_table


def _interest_phases(
    cfg: SyntheticConfig, u: np.ndarray, i: np.ndarray, ts: np.ndarray, items: _Items
) -> tuple[np.ndarray, np.ndarray]:
    """The planted sequence effect: each user has a current interest category per `interest_days` phase.

    The feed shows it (INTEREST_FEED_SHARE of the user's impressions are swapped to items of it) and clicks
    favour it (+interest_effect on the logit). user_id alone cannot tell which phase is current; the user's
    recent clicks can. Off (no change to the world, no draws) at interest_effect 0; its own generator.
    """
    if cfg.interest_effect == 0:
        return i, np.zeros(len(i))
    rng = np.random.default_rng([cfg.seed, 7])
    by_category = np.argsort(items.category, kind="stable")
    counts = np.bincount(items.category, minlength=cfg.n_categories)
    starts = np.cumsum(counts) - counts
    stocked = np.flatnonzero(counts)
    phase = (ts - START_TS) // (cfg.interest_days * 86_400)
    current = rng.choice(stocked, size=(cfg.n_users, int(phase.max()) + 1))[u, phase]
    swap = rng.random(len(i)) < INTEREST_FEED_SHARE
    pick = starts[current] + (rng.random(len(i)) * counts[current]).astype(np.int64)
    i = np.where(swap, by_category[pick], i)
    return i, cfg.interest_effect * (items.category[i] == current)


def _conversion(
    rng: np.random.Generator, items: _Items, affinity: np.ndarray, band: np.ndarray, i: np.ndarray
) -> np.ndarray:
    """True conversion probability of each impression, were it clicked (mean TARGET_CVR over impressions)."""
    brand_cvr = rng.normal(0.0, SD_BRAND_CVR, int(items.brand.max()) + 1)
    logit = CVR_SHARED * affinity + brand_cvr[items.brand[i]] + CVR_PRICE[band] * items.price_z[i]
    return sigmoid(logit + calibrate_intercept(logit, TARGET_CVR))


def planted_cross(seed: int, n_categories: int, strength: float) -> np.ndarray:
    """[category, city tier] logit table: random signs, rows and columns centred (no main effect), RMS `strength`.

    Drawn from its own generator, so planting it leaves every other draw of the world as it was.
    """
    signs = np.random.default_rng([seed, 1]).choice([-1.0, 1.0], size=(n_categories, len(CITY_TIER_EFFECT)))
    table = signs - signs.mean(axis=0) - signs.mean(axis=1, keepdims=True) + signs.mean()
    return table * strength / max(float(np.sqrt((table**2).mean())), 1e-12)


def user_taste(seed: int, n_users: int, n_categories: int, strength: float) -> np.ndarray:
    """[user, category] logit table: normal, rows and columns centred (no user or category main effect), SD `strength`.

    Drawn from its own generator, so planting it leaves every other draw of the world as it was. Only an id-level
    cross (user_id x category_id) can learn it, and only for users seen in training.
    """
    table = np.random.default_rng([seed, 13]).normal(0.0, strength, (n_users, n_categories))
    return table - table.mean(axis=0) - table.mean(axis=1, keepdims=True) + table.mean()


def noise_columns(seed: int, count: int, n: int) -> list[np.ndarray]:
    """`count` int64 columns of uniform values 1..100 from their own generator (no effect on anything)."""
    rng = np.random.default_rng([seed, 12])  # not [seed, 2]: the purchase draws use that stream
    return [rng.integers(1, 101, n) for _ in range(count)]


def position_weights() -> np.ndarray:
    """Share of impressions at each feed position (rank 1 first)."""
    w = 0.88 ** np.arange(N_POSITIONS)
    return w / w.sum()


def rank_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC from ranks (ties get their average rank); NaN when only one class is present.

    >>> rank_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    y = np.asarray(labels).astype(bool)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(np.asarray(scores), return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    avg_rank = upper - (counts - 1) / 2.0  # 1-based average rank of each distinct score
    rank_sum = avg_rank[inverse][y].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def oracle_auc(table: pa.Table, label: str = "click", score: str = "true_ctr") -> float:
    """AUC of the true click probability against the drawn clicks: the ceiling for any model on this data."""
    return rank_auc(table[label].to_numpy(), table[score].to_numpy())
