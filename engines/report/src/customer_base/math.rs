//! The customer-base model's mathematics: BG/NBD (Fader, Hardie & Lee 2005, "Counting Your Customers
//! the Easy Way") for the number of purchases and whether a customer is still alive, and Gamma-Gamma
//! (Fader, Hardie & Lee 2005, "RFM and CLV") for the spend per purchase — both fitted by maximum
//! likelihood with Nelder–Mead over the log of the parameters (so they stay positive).

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; relative error below 1e-14).
pub fn ln_gamma(x: f64) -> f64 {
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = COEFFICIENTS[0];
    for (i, c) in COEFFICIENTS.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// ln(e^a + e^b) without overflow.
fn log_sum_exp(a: f64, b: f64) -> f64 {
    let (high, low) = if a >= b { (a, b) } else { (b, a) };
    if low == f64::NEG_INFINITY {
        return high;
    }
    high + (low - high).exp().ln_1p()
}

/// Gauss's hypergeometric ₂F₁(a, b; c; z) for 0 ≤ z < 1, by its series.
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 0..100_000 {
        let k = k as f64;
        term *= (a + k) * (b + k) / ((c + k) * (k + 1.0)) * z;
        sum += term;
        if term.abs() < 1e-15 * sum.abs() {
            break;
        }
    }
    sum
}

/// One customer's purchase history in model time units: `x` repeat purchases (purchases after the
/// first; several on one day count once), `t_x` the time of the last one and `t` the time observed,
/// both measured from the first purchase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct History {
    pub x: f64,
    pub t_x: f64,
    pub t: f64,
}

/// BG/NBD parameters: purchase rates ~ Gamma(r, α); dropout probabilities ~ Beta(a, b).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbd {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
}

impl BgNbd {
    /// The log-likelihood of one history (Fader, Hardie & Lee 2005, eq. 6).
    pub fn log_likelihood(&self, h: &History) -> f64 {
        let BgNbd { r, alpha, a, b } = *self;
        let x = h.x;
        let a1 = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln();
        let a2 = ln_gamma(a + b) + ln_gamma(b + x) - ln_gamma(b) - ln_gamma(a + b + x);
        let a3 = -(r + x) * (alpha + h.t).ln();
        let a4 = if x > 0.0 {
            a.ln() - (b + x - 1.0).ln() - (r + x) * (alpha + h.t_x).ln()
        } else {
            f64::NEG_INFINITY
        };
        a1 + a2 + log_sum_exp(a3, a4)
    }

    /// The probability that the customer is still alive at the end of their observation.
    pub fn p_alive(&self, h: &History) -> f64 {
        if h.x == 0.0 {
            return 1.0;
        }
        let BgNbd { r, alpha, a, b } = *self;
        let odds = a / (b + h.x - 1.0) * ((r + h.x) * ((alpha + h.t) / (alpha + h.t_x)).ln()).exp();
        1.0 / (1.0 + odds)
    }

    /// Expected purchases in the next `t` time units given the history (Fader, Hardie & Lee 2005,
    /// eq. 10).
    pub fn expected_purchases(&self, h: &History, t: f64) -> f64 {
        if t <= 0.0 {
            return 0.0;
        }
        let BgNbd { r, alpha, a, b } = *self;
        let x = h.x;
        let z = t / (alpha + h.t + t);
        // ((α+T)/(α+T+t))^(r+x) · ₂F₁(r+x, b+x; a+b+x−1; z), with ₂F₁ turned by Euler's
        // transformation ₂F₁(A, B; C; z) = (1−z)^(C−A−B) ₂F₁(C−A, C−B; C; z) and 1−z =
        // (α+T)/(α+T+t): (1−z)^(a−1) · ₂F₁(a+b−1−r, a−1; a+b+x−1; z). Its parameters no longer
        // grow with x, so the series converges in a few terms for frequent buyers (the original
        // one's terms first grow like k^(r+x)) and no huge intermediate value appears.
        let turned = ((a - 1.0) * ((alpha + h.t) / (alpha + h.t + t)).ln()).exp()
            * hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z);
        let numerator = (a + b + x - 1.0) / (a - 1.0) * (1.0 - turned);
        let denominator = if x > 0.0 {
            1.0 + a / (b + x - 1.0) * ((r + x) * ((alpha + h.t) / (alpha + h.t_x)).ln()).exp()
        } else {
            1.0
        };
        numerator / denominator
    }
}

/// Gamma-Gamma parameters of the spend per purchase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaGamma {
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
}

impl GammaGamma {
    /// The log-likelihood of a customer's `x` repeat purchases with mean spend `m`.
    pub fn log_likelihood(&self, x: f64, m: f64) -> f64 {
        let GammaGamma { p, q, gamma } = *self;
        ln_gamma(p * x + q) - ln_gamma(p * x) - ln_gamma(q)
            + q * gamma.ln()
            + (p * x - 1.0) * m.ln()
            + p * x * x.ln()
            - (p * x + q) * (gamma + m * x).ln()
    }

    /// Expected spend per purchase of a customer with `x` repeat purchases of mean `m` (the
    /// population mean for a customer with none).
    pub fn expected_spend(&self, x: f64, m: f64) -> f64 {
        let GammaGamma { p, q, gamma } = *self;
        if x <= 0.0 {
            return p * gamma / (q - 1.0);
        }
        p * (gamma + x * m) / (p * x + q - 1.0)
    }
}

/// Minimise `f` from `start` with Nelder–Mead; returns the best point and its value.
pub fn nelder_mead(
    f: &dyn Fn(&[f64]) -> f64,
    start: &[f64],
    max_iterations: usize,
) -> (Vec<f64>, f64) {
    let n = start.len();
    let mut simplex: Vec<Vec<f64>> = vec![start.to_vec()];
    for i in 0..n {
        let mut point = start.to_vec();
        point[i] += if point[i] == 0.0 {
            0.5
        } else {
            0.5 * point[i].abs().max(0.5)
        };
        simplex.push(point);
    }
    let mut values: Vec<f64> = simplex.iter().map(|p| safe(f(p))).collect();
    for _ in 0..max_iterations {
        let mut order: Vec<usize> = (0..=n).collect();
        order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
        simplex = order.iter().map(|&i| simplex[i].clone()).collect();
        values = order.iter().map(|&i| values[i]).collect();
        let spread = (values[n] - values[0]).abs();
        let size = simplex[1..]
            .iter()
            .map(|p| {
                p.iter()
                    .zip(&simplex[0])
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max)
            })
            .fold(0.0, f64::max);
        if spread < 1e-11 * (1.0 + values[0].abs()) && size < 1e-9 {
            break;
        }
        let centroid: Vec<f64> = (0..n)
            .map(|k| simplex[..n].iter().map(|p| p[k]).sum::<f64>() / n as f64)
            .collect();
        let along = |coefficient: f64| -> Vec<f64> {
            centroid
                .iter()
                .zip(&simplex[n])
                .map(|(c, w)| c + coefficient * (w - c))
                .collect()
        };
        let reflected = along(-1.0);
        let reflected_value = safe(f(&reflected));
        if reflected_value < values[0] {
            let expanded = along(-2.0);
            let expanded_value = safe(f(&expanded));
            if expanded_value < reflected_value {
                simplex[n] = expanded;
                values[n] = expanded_value;
            } else {
                simplex[n] = reflected;
                values[n] = reflected_value;
            }
        } else if reflected_value < values[n - 1] {
            simplex[n] = reflected;
            values[n] = reflected_value;
        } else {
            let outside = reflected_value < values[n];
            let contracted = along(if outside { -0.5 } else { 0.5 });
            let contracted_value = safe(f(&contracted));
            if contracted_value < values[n].min(reflected_value) {
                simplex[n] = contracted;
                values[n] = contracted_value;
            } else {
                for i in 1..=n {
                    simplex[i] = simplex[0]
                        .iter()
                        .zip(&simplex[i])
                        .map(|(b, p)| b + 0.5 * (p - b))
                        .collect();
                    values[i] = safe(f(&simplex[i]));
                }
            }
        }
    }
    let best = (0..=n)
        .min_by(|&i, &j| values[i].total_cmp(&values[j]))
        .unwrap_or(0);
    (simplex[best].clone(), values[best])
}

fn safe(value: f64) -> f64 {
    if value.is_finite() { value } else { f64::MAX }
}

/// Nelder–Mead, restarted from its own answer until the value stops improving (the simplex can
/// collapse early on long, curved valleys such as these likelihoods).
fn minimise(f: &dyn Fn(&[f64]) -> f64, start: &[f64]) -> (Vec<f64>, f64) {
    let (mut best, mut value) = nelder_mead(f, start, 20_000);
    for _ in 0..5 {
        let (again, again_value) = nelder_mead(f, &best, 20_000);
        let improved = value - again_value > 1e-9;
        best = again;
        value = again_value;
        if !improved {
            break;
        }
    }
    (best, value)
}

/// Customers with one (x, t_x, T) in the BG/NBD fit: indexes of x and of the times.
struct Member {
    x: u32,
    t_x: u32,
    t: u32,
    customers: f64,
}

/// Fit BG/NBD by maximum likelihood; returns the parameters and the total log-likelihood.
pub fn fit_bg_nbd(histories: &[History]) -> (BgNbd, f64) {
    let params = |v: &[f64]| BgNbd {
        r: v[0].exp(),
        alpha: v[1].exp(),
        a: v[2].exp(),
        b: v[3].exp(),
    };
    // The terms that depend only on x are computed once per distinct x and evaluation, customers
    // with the same (t_x, T) once with their count (a whole day's cohort of one-time buyers shares
    // one), and ln(α + t) once per distinct time (t_x and T are whole days in model units: a few
    // thousand values against a hundred thousand customers).
    let mut same: std::collections::HashMap<(u64, u64, u64), f64> = Default::default();
    for h in histories {
        *same
            .entry((h.x as u64, h.t_x.to_bits(), h.t.to_bits()))
            .or_default() += 1.0;
    }
    let mut times: Vec<f64> = same
        .keys()
        .flat_map(|(_, t_x, t)| [f64::from_bits(*t_x), f64::from_bits(*t)])
        .collect();
    times.sort_by(f64::total_cmp);
    times.dedup_by(|a, b| a.to_bits() == b.to_bits());
    let time_index: std::collections::HashMap<u64, u32> = times
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_bits(), i as u32))
        .collect();
    // The distinct x, and every distinct (x, t_x, T) with its customers, in (x, t_x, T) order — a
    // fixed order, so the sum (and the fit) is the same from run to run.
    let mut members: Vec<((u64, f64, f64), f64)> = same
        .into_iter()
        .map(|((x, t_x, t), customers)| ((x, f64::from_bits(t_x), f64::from_bits(t)), customers))
        .collect();
    members.sort_by(|(a, _), (b, _)| {
        a.0.cmp(&b.0)
            .then(a.1.total_cmp(&b.1))
            .then(a.2.total_cmp(&b.2))
    });
    let mut xs: Vec<f64> = Vec::new();
    let members: Vec<Member> = members
        .into_iter()
        .map(|((x, t_x, t), customers)| {
            if xs.last() != Some(&(x as f64)) {
                xs.push(x as f64);
            }
            Member {
                x: xs.len() as u32 - 1,
                t_x: time_index[&t_x.to_bits()],
                t: time_index[&t.to_bits()],
                customers,
            }
        })
        .collect();
    let negative = |v: &[f64]| -> f64 {
        let BgNbd { r, alpha, a, b } = params(v);
        let shared = r * alpha.ln() - ln_gamma(r) + ln_gamma(a + b) - ln_gamma(b);
        let logs: Vec<f64> = times.iter().map(|t| (alpha + t).ln()).collect();
        // Per distinct x: the constant term and the dropout term (ln 0 without repeat purchases).
        let per_x: Vec<(f64, f64, f64)> = xs
            .iter()
            .map(|&x| {
                let constant = shared + ln_gamma(r + x) + ln_gamma(b + x) - ln_gamma(a + b + x);
                let dropout = if x > 0.0 {
                    a.ln() - (b + x - 1.0).ln()
                } else {
                    f64::NEG_INFINITY
                };
                (r + x, constant, dropout)
            })
            .collect();
        let part = |range: std::ops::Range<usize>| -> f64 {
            let mut total = 0.0;
            for member in &members[range] {
                let (rx, constant, dropout) = per_x[member.x as usize];
                let a3 = -rx * logs[member.t as usize];
                let a4 = dropout - rx * logs[member.t_x as usize];
                total += member.customers * (constant + log_sum_exp(a3, a4));
            }
            total
        };
        -crate::parallel::sum_in_parts(members.len(), &part)
    };
    let (best, value) = minimise(&negative, &[0.0, 0.0, 0.0, 0.0]);
    (params(&best), -value)
}

/// Fit Gamma-Gamma on the customers with repeat purchases: (x, mean spend) pairs.
pub fn fit_gamma_gamma(repeaters: &[(f64, f64)]) -> (GammaGamma, f64) {
    let params = |v: &[f64]| GammaGamma {
        p: v[0].exp(),
        q: v[1].exp(),
        gamma: v[2].exp(),
    };
    // [`GammaGamma::log_likelihood`] summed over the customers, rearranged: the terms that depend on
    // the parameters only through x are computed once per distinct x and evaluation, Σ ln m is a
    // constant per x, and per customer one logarithm is left, ln(γ + m·x).
    struct SameX {
        x: f64,
        customers: f64,
        sum_ln_m: f64,
        /// m·x of each customer.
        totals: Vec<f64>,
    }
    let mut groups: std::collections::BTreeMap<u64, SameX> = Default::default();
    for (x, m) in repeaters {
        let group = groups.entry(x.to_bits()).or_insert_with(|| SameX {
            x: *x,
            customers: 0.0,
            sum_ln_m: 0.0,
            totals: Vec::new(),
        });
        group.customers += 1.0;
        group.sum_ln_m += m.ln();
        group.totals.push(m * x);
    }
    let negative = |v: &[f64]| -> f64 {
        let GammaGamma { p, q, gamma } = params(v);
        let shared = q * gamma.ln() - ln_gamma(q);
        let mut total = 0.0;
        for group in groups.values() {
            let px = p * group.x;
            let constant = ln_gamma(px + q) - ln_gamma(px) + shared + px * group.x.ln();
            let spent: f64 = group.totals.iter().map(|mx| (gamma + mx).ln()).sum();
            total += group.customers * constant + (px - 1.0) * group.sum_ln_m - (px + q) * spent;
        }
        -total
    };
    let (best, value) = minimise(&negative, &[0.0, 0.0, 0.0]);
    (params(&best), -value)
}
