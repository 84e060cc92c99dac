//! The 2-D fast Fourier transforms behind [`super::fft_conv`]: 8 independent complex grids at
//! once, one in each lane of a vector, so every butterfly is 8 lanes wide with no shuffles.
//!
//! Layout: grid point (row, column) holds 8 lanes at `row · stride + column · 8` of a real and an
//! imaginary array; rows are [`ROW_PAD`] floats longer than their points, so that a column's
//! points do not all fall in the same few L1 cache sets.
//!
//! Transforms are radix-2, two stages at a time (the four elements a stage pair reads stay in
//! registers between its stages: half the loads and stores of single stages, the same results),
//! with the twiddles 1 and ±i of each group's first element pair applied without multiplying:
//! decimation in frequency forward (natural order in, bit-reversed out) and decimation in time
//! inverse (bit-reversed in, natural out). Products between them do not care about the order, so
//! no permutation is ever done. 2-D: rows first (only those holding data), then columns, 8
//! columns at a time as 64-float elements; the inverse runs columns first, then only the rows
//! that are read. A convolution runs the column transforms, the product with the filter and the
//! inverse column transforms one column block at a time ([`filter_columns`]), so a block stays in
//! the L1 cache through all three.
//!
//! Arithmetic is plain multiplies and adds (no fused multiply-add) on a [`Vector`] of 8 lanes:
//! AVX registers, or 8-float arrays on CPUs without AVX2. Both give the same bits. (Written on
//! arrays alone, the compiler's vectoriser mixed 128- and 256-bit halves and kept a butterfly's
//! values on the stack: ~10 cycles per 8-lane butterfly; explicit vectors run it in ~3.)

pub(super) use super::vector::LANES;
use super::vector::Vector;

/// Columns per element of the column transforms (8 columns × 8 lanes = 64 floats).
const COLUMN_BLOCK: usize = 8;

/// Floats between the end of one stored row and the start of the next (one cache line).
const ROW_PAD: usize = 16;

/// An `nh × nw` grid (powers of two) of points of [`LANES`] lanes, rows `stride` floats apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Grid {
    pub(super) nh: usize,
    pub(super) nw: usize,
    stride: usize,
}

impl Grid {
    /// A grid of at least `rows × columns` points (powers of two, at least 8 columns).
    pub(super) fn at_least(rows: usize, columns: usize) -> Grid {
        let nw = columns.next_power_of_two().max(COLUMN_BLOCK);
        Grid {
            nh: rows.next_power_of_two(),
            nw,
            stride: nw * LANES + ROW_PAD,
        }
    }

    fn len(&self) -> usize {
        self.nh * self.stride
    }

    /// Offset of grid point (`row`, `column`), lane 0.
    pub(super) fn at(&self, row: usize, column: usize) -> usize {
        row * self.stride + column * LANES
    }

    /// Floats of one row that hold grid points (the rest is padding).
    fn row_width(&self) -> usize {
        self.nw * LANES
    }

    fn row(&self, r: usize) -> std::ops::Range<usize> {
        self.at(r, 0)..self.at(r, 0) + self.row_width()
    }
}

/// `exp(−2πi·k/n)` for `k < n/2`.
struct Twiddles {
    re: Vec<f32>,
    im: Vec<f32>,
}

impl Twiddles {
    fn new(n: usize) -> Twiddles {
        let angle = |k: usize| -2.0 * std::f64::consts::PI * k as f64 / n as f64;
        Twiddles {
            re: (0..n / 2).map(|k| angle(k).cos() as f32).collect(),
            im: (0..n / 2).map(|k| angle(k).sin() as f32).collect(),
        }
    }

    /// Twiddle `k`, conjugated with `conjugate`, in all lanes.
    #[inline(always)]
    fn get<V: Vector>(&self, k: usize, conjugate: bool) -> (V, V) {
        let im = if conjugate { -self.im[k] } else { self.im[k] };
        (V::splat(self.re[k]), V::splat(im))
    }
}

/// A grid and the twiddles of both its axes.
pub(super) struct Plan {
    pub(super) grid: Grid,
    rows: Twiddles,
    columns: Twiddles,
}

impl Plan {
    pub(super) fn new(grid: Grid) -> Plan {
        Plan {
            grid,
            rows: Twiddles::new(grid.nw),
            columns: Twiddles::new(grid.nh),
        }
    }
}

/// A complex grid, real and imaginary parts apart.
#[derive(Clone)]
pub(super) struct Spectrum {
    pub(super) re: Vec<f32>,
    pub(super) im: Vec<f32>,
}

impl Spectrum {
    pub(super) fn zeros(grid: &Grid) -> Spectrum {
        Spectrum {
            re: vec![0.0; grid.len()],
            im: vec![0.0; grid.len()],
        }
    }
}

/// One complex value in 8 lanes: real parts, imaginary parts.
type Lanes<V> = (V, V);

/// Decimation-in-frequency butterfly: `(x, y) → (x + y, (x − y)·w)`.
#[inline(always)]
fn dif_butterfly<V: Vector>(x: &mut Lanes<V>, y: &mut Lanes<V>, (wr, wi): (V, V)) {
    let (dr, di) = (x.0.sub(y.0), x.1.sub(y.1));
    *x = (x.0.add(y.0), x.1.add(y.1));
    *y = (dr.mul(wr).sub(di.mul(wi)), dr.mul(wi).add(di.mul(wr)));
}

/// Decimation-in-time butterfly: `(x, y) → (x + y·w, x − y·w)`.
#[inline(always)]
fn dit_butterfly<V: Vector>(x: &mut Lanes<V>, y: &mut Lanes<V>, (wr, wi): (V, V)) {
    let tr = y.0.mul(wr).sub(y.1.mul(wi));
    let ti = y.0.mul(wi).add(y.1.mul(wr));
    *y = (x.0.sub(tr), x.1.sub(ti));
    *x = (x.0.add(tr), x.1.add(ti));
}

/// A butterfly whose twiddle is 1 (both directions): `(x, y) → (x + y, x − y)`.
#[inline(always)]
fn sum_difference<V: Vector>(x: &mut Lanes<V>, y: &mut Lanes<V>) {
    let d = (x.0.sub(y.0), x.1.sub(y.1));
    *x = (x.0.add(y.0), x.1.add(y.1));
    *y = d;
}

/// [`dif_butterfly`] with twiddle `−i`: `(x, y) → (x + y, (x − y)·(−i))`, where
/// `(a + bi)·(−i) = b − ai`.
#[inline(always)]
fn dif_butterfly_minus_i<V: Vector>(x: &mut Lanes<V>, y: &mut Lanes<V>) {
    let d = (x.1.sub(y.1), y.0.sub(x.0));
    *x = (x.0.add(y.0), x.1.add(y.1));
    *y = d;
}

/// [`dit_butterfly`] with twiddle `i`: `(x, y) → (x + y·i, x − y·i)`, where `y·i = −y.im + y.re·i`.
#[inline(always)]
fn dit_butterfly_i<V: Vector>(x: &mut Lanes<V>, y: &mut Lanes<V>) {
    let (yr, yi) = *y;
    *y = (x.0.add(yi), x.1.sub(yr));
    *x = (x.0.sub(yi), x.1.add(yr));
}

/// The `n` elements of one transform: element `i` is `W` floats at `i · stride` of the real and
/// the imaginary parts, read and written in 8-lane pieces. Raw pointers, bounds checked once in
/// [`Elements::new`] (with slices every piece paid its own checks).
struct Elements<const W: usize> {
    re: *mut f32,
    im: *mut f32,
    stride: usize,
    n: usize,
}

impl<const W: usize> Elements<W> {
    fn new(re: &mut [f32], im: &mut [f32], n: usize, stride: usize) -> Self {
        assert!(W.is_multiple_of(LANES) && W <= stride);
        assert!(n == 0 || ((n - 1) * stride + W <= re.len() && (n - 1) * stride + W <= im.len()));
        Elements {
            re: re.as_mut_ptr(),
            im: im.as_mut_ptr(),
            stride,
            n,
        }
    }

    /// Piece `p` (< W / 8) of element `i` (< n).
    #[inline(always)]
    fn get<V: Vector>(&self, i: usize, p: usize) -> Lanes<V> {
        debug_assert!(i < self.n && p < W / LANES);
        let at = i * self.stride + p * LANES;
        // SAFETY: in bounds of both slices (`new` checked the last element's end), which stay
        // mutably borrowed by the transform that made `self`.
        unsafe { (V::load(self.re.add(at)), V::load(self.im.add(at))) }
    }

    #[inline(always)]
    fn set<V: Vector>(&self, i: usize, p: usize, (re, im): Lanes<V>) {
        debug_assert!(i < self.n && p < W / LANES);
        let at = i * self.stride + p * LANES;
        // SAFETY: as in `get`.
        unsafe {
            re.store(self.re.add(at));
            im.store(self.im.add(at));
        }
    }
}

/// Stage pair (half-sizes `2q`, `q`) of [`dif`] on elements `i, i + q, i + 2q, i + 3q`:
/// pairs (0, 2), (1, 3) with twiddles `a0`, `a1`, then (0, 1), (2, 3) with `b`.
#[inline(always)]
fn dif_two_stages<V: Vector, const W: usize>(
    e: &Elements<W>,
    (i, q, p): (usize, usize, usize),
    (a0, a1, b): ((V, V), (V, V), (V, V)),
) {
    let (mut e0, mut e2) = (e.get(i, p), e.get(i + 2 * q, p));
    dif_butterfly(&mut e0, &mut e2, a0);
    let (mut e1, mut e3) = (e.get(i + q, p), e.get(i + 3 * q, p));
    dif_butterfly(&mut e1, &mut e3, a1);
    dif_butterfly(&mut e0, &mut e1, b);
    e.set(i, p, e0);
    e.set(i + q, p, e1);
    dif_butterfly(&mut e2, &mut e3, b);
    e.set(i + 2 * q, p, e2);
    e.set(i + 3 * q, p, e3);
}

/// [`dif_two_stages`] for `j = 0`, whose twiddles are `a0 = b = 1` and `a1 = −i`: no
/// multiplications.
#[inline(always)]
fn dif_two_stages_first<V: Vector, const W: usize>(
    e: &Elements<W>,
    (i, q, p): (usize, usize, usize),
) {
    let (mut e0, mut e2) = (e.get::<V>(i, p), e.get::<V>(i + 2 * q, p));
    sum_difference(&mut e0, &mut e2);
    let (mut e1, mut e3) = (e.get(i + q, p), e.get(i + 3 * q, p));
    dif_butterfly_minus_i(&mut e1, &mut e3);
    sum_difference(&mut e0, &mut e1);
    e.set(i, p, e0);
    e.set(i + q, p, e1);
    sum_difference(&mut e2, &mut e3);
    e.set(i + 2 * q, p, e2);
    e.set(i + 3 * q, p, e3);
}

/// [`dit_two_stages`] for `j = 0` (conjugate twiddles `b = a0 = 1`, `a1 = i`).
#[inline(always)]
fn dit_two_stages_first<V: Vector, const W: usize>(
    e: &Elements<W>,
    (i, q, p): (usize, usize, usize),
) {
    let (mut e0, mut e1) = (e.get::<V>(i, p), e.get::<V>(i + q, p));
    sum_difference(&mut e0, &mut e1);
    let (mut e2, mut e3) = (e.get(i + 2 * q, p), e.get(i + 3 * q, p));
    sum_difference(&mut e2, &mut e3);
    sum_difference(&mut e0, &mut e2);
    e.set(i, p, e0);
    e.set(i + 2 * q, p, e2);
    dit_butterfly_i(&mut e1, &mut e3);
    e.set(i + q, p, e1);
    e.set(i + 3 * q, p, e3);
}

/// The inverse of [`dif_two_stages`] (times 4; twiddles come conjugated): pairs (0, 1), (2, 3)
/// with `b`, then (0, 2), (1, 3) with `a0`, `a1`.
#[inline(always)]
fn dit_two_stages<V: Vector, const W: usize>(
    e: &Elements<W>,
    (i, q, p): (usize, usize, usize),
    (a0, a1, b): ((V, V), (V, V), (V, V)),
) {
    let (mut e0, mut e1) = (e.get(i, p), e.get(i + q, p));
    dit_butterfly(&mut e0, &mut e1, b);
    let (mut e2, mut e3) = (e.get(i + 2 * q, p), e.get(i + 3 * q, p));
    dit_butterfly(&mut e2, &mut e3, b);
    dit_butterfly(&mut e0, &mut e2, a0);
    e.set(i, p, e0);
    e.set(i + 2 * q, p, e2);
    dit_butterfly(&mut e1, &mut e3, a1);
    e.set(i + q, p, e1);
    e.set(i + 3 * q, p, e3);
}

/// Radix-2 decimation-in-frequency transform of `n` (a power of two) elements of `W` floats,
/// element `i` at `i · stride` in `re` / `im`: natural order in, bit-reversed order out. Stage
/// pairs from half-size `n/2` down; an odd stage count ends with one single stage.
#[inline(always)]
fn dif<V: Vector, const W: usize>(
    re: &mut [f32],
    im: &mut [f32],
    n: usize,
    stride: usize,
    tw: &Twiddles,
) {
    let e = Elements::<W>::new(re, im, n, stride);
    let (mut half, mut step) = (n / 2, 1);
    while half >= 2 {
        let q = half / 2;
        for g in (0..n).step_by(2 * half) {
            for p in 0..W / LANES {
                dif_two_stages_first::<V, W>(&e, (g, q, p));
            }
            for j in 1..q {
                let a0 = tw.get::<V>(j * step, false);
                let a1 = tw.get::<V>((j + q) * step, false);
                let b = tw.get::<V>(2 * j * step, false);
                for p in 0..W / LANES {
                    dif_two_stages(&e, (g + j, q, p), (a0, a1, b));
                }
            }
        }
        half /= 4;
        step *= 4;
    }
    if half == 1 {
        for g in (0..n).step_by(2) {
            for p in 0..W / LANES {
                let (mut x, mut y) = (e.get::<V>(g, p), e.get::<V>(g + 1, p));
                sum_difference(&mut x, &mut y);
                e.set(g, p, x);
                e.set(g + 1, p, y);
            }
        }
    }
}

/// The inverse of [`dif`] times `n`: its stages undone in reverse order as decimation-in-time
/// butterflies with conjugate twiddles, bit-reversed order in, natural order out.
#[inline(always)]
fn dit<V: Vector, const W: usize>(
    re: &mut [f32],
    im: &mut [f32],
    n: usize,
    stride: usize,
    tw: &Twiddles,
) {
    if n < 2 {
        return;
    }
    let e = Elements::<W>::new(re, im, n, stride);
    let mut q = 1;
    if n.trailing_zeros() % 2 == 1 {
        for g in (0..n).step_by(2) {
            for p in 0..W / LANES {
                let (mut x, mut y) = (e.get::<V>(g, p), e.get::<V>(g + 1, p));
                sum_difference(&mut x, &mut y);
                e.set(g, p, x);
                e.set(g + 1, p, y);
            }
        }
        q = 2;
    }
    while q < n {
        // Undo the stage pair (2q, q): stage q first, then 2q.
        let (step_b, step_a) = (n / (2 * q), n / (4 * q));
        for g in (0..n).step_by(4 * q) {
            for p in 0..W / LANES {
                dit_two_stages_first::<V, W>(&e, (g, q, p));
            }
            for j in 1..q {
                let b = tw.get::<V>(j * step_b, true);
                let a0 = tw.get::<V>(j * step_a, true);
                let a1 = tw.get::<V>((j + q) * step_a, true);
                for p in 0..W / LANES {
                    dit_two_stages(&e, (g + j, q, p), (a0, a1, b));
                }
            }
        }
        q *= 4;
    }
}

/// 2-D forward transform of `s`, whose rows from `data_rows` on are zero.
#[inline(always)]
pub(super) fn forward_2d<V: Vector>(plan: &Plan, s: &mut Spectrum, data_rows: usize) {
    forward_rows::<V>(plan, s, data_rows);
    forward_columns_2d::<V>(plan, s);
}

/// The row transforms of [`forward_2d`] (rows from `data_rows` on are zero and stay so).
#[inline(always)]
fn forward_rows<V: Vector>(plan: &Plan, s: &mut Spectrum, data_rows: usize) {
    let g = &plan.grid;
    for r in 0..data_rows {
        let row = g.row(r);
        dif::<V, LANES>(
            &mut s.re[row.clone()],
            &mut s.im[row],
            g.nw,
            LANES,
            &plan.rows,
        );
    }
}

/// The column transforms of column block `block` (its first column).
#[inline(always)]
fn forward_columns<V: Vector>(plan: &Plan, s: &mut Spectrum, block: usize) {
    let g = &plan.grid;
    let at = g.at(0, block);
    let (re, im) = (&mut s.re[at..], &mut s.im[at..]);
    dif::<V, { LANES * COLUMN_BLOCK }>(re, im, g.nh, g.stride, &plan.columns);
}

/// The inverse column transforms of column block `block`.
#[inline(always)]
fn inverse_columns<V: Vector>(plan: &Plan, s: &mut Spectrum, block: usize) {
    let g = &plan.grid;
    let at = g.at(0, block);
    let (re, im) = (&mut s.re[at..], &mut s.im[at..]);
    dit::<V, { LANES * COLUMN_BLOCK }>(re, im, g.nh, g.stride, &plan.columns);
}

/// 2-D inverse transform of `s` (times the grid's point count), correct on `rows` only.
#[inline(always)]
pub(super) fn inverse_2d<V: Vector>(
    plan: &Plan,
    s: &mut Spectrum,
    rows: impl Iterator<Item = usize>,
) {
    inverse_columns_2d::<V>(plan, s);
    inverse_rows::<V>(plan, s, rows);
}

/// The column half of [`inverse_2d`] (before [`store_rows`]).
#[inline(always)]
pub(super) fn inverse_columns_2d<V: Vector>(plan: &Plan, s: &mut Spectrum) {
    for block in (0..plan.grid.nw).step_by(COLUMN_BLOCK) {
        inverse_columns::<V>(plan, s, block);
    }
}

/// The row transforms of [`inverse_2d`], on `rows` only.
#[inline(always)]
fn inverse_rows<V: Vector>(plan: &Plan, s: &mut Spectrum, rows: impl Iterator<Item = usize>) {
    let g = &plan.grid;
    for r in rows {
        let row = g.row(r);
        dit::<V, LANES>(
            &mut s.re[row.clone()],
            &mut s.im[row],
            g.nw,
            LANES,
            &plan.rows,
        );
    }
}

/// `s ← F⁻¹_columns(F_columns(s) · k)` (`k̄` with `conjugate`) for a row-transformed `s`, one
/// column block at a time, so each block stays in the L1 cache from its forward column transforms
/// through the product to its inverse ones (the same values as [`forward_2d`]'s columns,
/// the product and [`inverse_2d`]'s columns one after another). `between(s, block)` sees each
/// block's spectrum just before the product.
#[inline(always)]
pub(super) fn filter_columns<V: Vector>(
    plan: &Plan,
    s: &mut Spectrum,
    (k, conjugate): (&Spectrum, bool),
    mut between: impl FnMut(&Spectrum, usize),
) {
    let g = &plan.grid;
    let sign = V::splat(if conjugate { -1.0 } else { 1.0 });
    for block in (0..g.nw).step_by(COLUMN_BLOCK) {
        forward_columns::<V>(plan, s, block);
        between(s, block);
        for r in 0..g.nh {
            let at = g.at(r, block);
            let points = at..at + LANES * COLUMN_BLOCK;
            let (sr, si) = (&mut s.re[points.clone()], &mut s.im[points.clone()]);
            let (kr, ki) = (&k.re[points.clone()], &k.im[points]);
            for p in (0..LANES * COLUMN_BLOCK).step_by(LANES) {
                let (a, b) = (V::from_slice(&sr[p..]), V::from_slice(&si[p..]));
                let (kr, ki) = (V::from_slice(&kr[p..]), sign.mul(V::from_slice(&ki[p..])));
                a.mul(kr).sub(b.mul(ki)).to_slice(&mut sr[p..]);
                a.mul(ki).add(b.mul(kr)).to_slice(&mut si[p..]);
            }
        }
        inverse_columns::<V>(plan, s, block);
    }
}

/// Writes `h × w` planes into the grid's top-left corner, lane `l` from `re[l]` (real part) and
/// `im[l]` (imaginary part), zero elsewhere (rows from `h` on are cleared too: the column
/// transforms read them), and runs each data row's forward transform as soon as the row is
/// written, while it is in the L1 cache: the row half of [`forward_2d`], whose columns
/// [`forward_columns_2d`] or [`filter_columns`] do next. Full 8-column blocks move as 8 × 8
/// transposes.
#[inline(always)]
pub(super) fn load_rows<V: Vector>(
    plan: &Plan,
    s: &mut Spectrum,
    (h, w): (usize, usize),
    re: &[&[f32]; LANES],
    im: &[&[f32]; LANES],
) {
    let grid = &plan.grid;
    for r in 0..grid.nh {
        for (part, planes) in [(&mut s.re, re), (&mut s.im, im)] {
            load_row::<V>(grid, &mut part[grid.row(r)], r, (h, w), planes);
        }
        if r < h {
            let row = grid.row(r);
            let (re, im) = (&mut s.re[row.clone()], &mut s.im[row]);
            dif::<V, LANES>(re, im, grid.nw, LANES, &plan.rows);
        }
    }
}

/// Row `r` of one part: lane `l` from `planes[l]`'s row `r` (zero past `w` and from row `h` on).
#[inline(always)]
fn load_row<V: Vector>(
    grid: &Grid,
    row: &mut [f32],
    r: usize,
    (h, w): (usize, usize),
    planes: &[&[f32]; LANES],
) {
    if r >= h {
        row.fill(0.0);
        return;
    }
    let full = w / LANES * LANES;
    let rows: [&[f32]; LANES] = std::array::from_fn(|l| &planes[l][r * w..(r + 1) * w]);
    let (blocks, rest) = row[..grid.row_width()].split_at_mut(full * LANES);
    for (b, points) in blocks.chunks_exact_mut(LANES * LANES).enumerate() {
        let m = std::array::from_fn(|l| V::from_slice(&rows[l][b * LANES..]));
        for (point, v) in points.chunks_exact_mut(LANES).zip(V::transpose(m)) {
            v.to_slice(point);
        }
    }
    for (i, point) in rest.chunks_exact_mut(LANES).enumerate() {
        let col = full + i;
        for (l, value) in point.iter_mut().enumerate() {
            *value = if col < w { rows[l][col] } else { 0.0 };
        }
    }
}

/// The column half of [`forward_2d`] (after [`load_rows`]).
#[inline(always)]
pub(super) fn forward_columns_2d<V: Vector>(plan: &Plan, s: &mut Spectrum) {
    for block in (0..plan.grid.nw).step_by(COLUMN_BLOCK) {
        forward_columns::<V>(plan, s, block);
    }
}

/// The row half of [`inverse_2d`] on rows `0..h`, each row copied out as soon as it is
/// transformed (while it is in the L1 cache): columns `0..w` of its lanes `0..planes.len()` into
/// row `r` of `re_planes` (real part) and `im_planes` (imaginary part; `None`: not wanted), `h × w`
/// each, full 8-column blocks as 8 × 8 transposes.
#[inline(always)]
pub(super) fn store_rows<V: Vector>(
    plan: &Plan,
    s: &mut Spectrum,
    (h, w): (usize, usize),
    re_planes: &mut [&mut [f32]],
    mut im_planes: Option<&mut [&mut [f32]]>,
) {
    let grid = &plan.grid;
    for r in 0..h {
        let row = grid.row(r);
        let (re, im) = (&mut s.re[row.clone()], &mut s.im[row]);
        dit::<V, LANES>(re, im, grid.nw, LANES, &plan.rows);
        store_row::<V>(re, r, w, re_planes);
        if let Some(planes) = im_planes.as_deref_mut() {
            store_row::<V>(im, r, w, planes);
        }
    }
}

/// Copies columns `0..w` of lanes `0..planes.len()` of one grid row into row `r` of `planes`.
#[inline(always)]
fn store_row<V: Vector>(row: &[f32], r: usize, w: usize, planes: &mut [&mut [f32]]) {
    let full = w / LANES * LANES;
    for (b, points) in row[..full * LANES].chunks_exact(LANES * LANES).enumerate() {
        let m = std::array::from_fn(|j| V::from_slice(&points[j * LANES..]));
        for (plane, v) in planes.iter_mut().zip(V::transpose(m)) {
            v.to_slice(&mut plane[r * w + b * LANES..]);
        }
    }
    for col in full..w {
        for (l, plane) in planes.iter_mut().enumerate() {
            plane[r * w + col] = row[col * LANES + l];
        }
    }
}

/// The 8-lane pieces of grid row `r` of `part`.
#[inline(always)]
fn pieces<'a>(grid: &Grid, part: &'a [f32], r: usize) -> std::slice::ChunksExact<'a, f32> {
    part[grid.row(r)].chunks_exact(LANES)
}

/// `out ← z · k` on every grid point.
#[inline(always)]
pub(super) fn product<V: Vector>(grid: &Grid, out: &mut Spectrum, z: &Spectrum, k: &Spectrum) {
    for r in 0..grid.nh {
        let row = grid.row(r);
        let (or, oi) = (&mut out.re[row.clone()], &mut out.im[row]);
        let points = or.chunks_exact_mut(LANES).zip(oi.chunks_exact_mut(LANES));
        let zs = pieces(grid, &z.re, r).zip(pieces(grid, &z.im, r));
        let ks = pieces(grid, &k.re, r).zip(pieces(grid, &k.im, r));
        for (((or, oi), (zr, zi)), (kr, ki)) in points.zip(zs).zip(ks) {
            let (a, b) = (V::from_slice(zr), V::from_slice(zi));
            let (kr, ki) = (V::from_slice(kr), V::from_slice(ki));
            a.mul(kr).sub(b.mul(ki)).to_slice(or);
            a.mul(ki).add(b.mul(kr)).to_slice(oi);
        }
    }
}

/// `acc ← acc + g · z̄` on the points of column block `block` (every row).
#[inline(always)]
pub(super) fn accumulate_correlation_block<V: Vector>(
    grid: &Grid,
    acc: &mut Spectrum,
    (g, z): (&Spectrum, &Spectrum),
    block: usize,
) {
    for r in 0..grid.nh {
        let at = grid.at(r, block);
        let points = at..at + LANES * COLUMN_BLOCK;
        let (ar, ai) = (&mut acc.re[points.clone()], &mut acc.im[points.clone()]);
        let (gr, gi) = (&g.re[points.clone()], &g.im[points.clone()]);
        let (zr, zi) = (&z.re[points.clone()], &z.im[points]);
        for p in (0..LANES * COLUMN_BLOCK).step_by(LANES) {
            let (gr, gi) = (V::from_slice(&gr[p..]), V::from_slice(&gi[p..]));
            let (zr, zi) = (V::from_slice(&zr[p..]), V::from_slice(&zi[p..]));
            let re = V::from_slice(&ar[p..]).add(gr.mul(zr).add(gi.mul(zi)));
            let im = V::from_slice(&ai[p..]).add(gi.mul(zr).sub(gr.mul(zi)));
            re.to_slice(&mut ar[p..]);
            im.to_slice(&mut ai[p..]);
        }
    }
}

/// `acc ← acc + g · z̄` on every grid point.
#[inline(always)]
pub(super) fn accumulate_correlation<V: Vector>(
    grid: &Grid,
    acc: &mut Spectrum,
    g: &Spectrum,
    z: &Spectrum,
) {
    for r in 0..grid.nh {
        let row = grid.row(r);
        let (ar, ai) = (&mut acc.re[row.clone()], &mut acc.im[row]);
        let points = ar.chunks_exact_mut(LANES).zip(ai.chunks_exact_mut(LANES));
        let gs = pieces(grid, &g.re, r).zip(pieces(grid, &g.im, r));
        let zs = pieces(grid, &z.re, r).zip(pieces(grid, &z.im, r));
        for (((ar, ai), (gr, gi)), (zr, zi)) in points.zip(gs).zip(zs) {
            let (gr, gi) = (V::from_slice(gr), V::from_slice(gi));
            let (zr, zi) = (V::from_slice(zr), V::from_slice(zi));
            let re = V::from_slice(ar).add(gr.mul(zr).add(gi.mul(zi)));
            let im = V::from_slice(ai).add(gi.mul(zr).sub(gr.mul(zi)));
            re.to_slice(ar);
            im.to_slice(ai);
        }
    }
}
