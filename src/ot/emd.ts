// Exact optimal transport between two discrete measures with a dense cost matrix: the primal
// network simplex on the complete bipartite graph (Bonneel, van de Panne, Paris & Heidrich 2011,
// who adapted LEMON's NetworkSimplex — the same algorithm POT's `ot.emd` runs). The spanning tree
// is kept as parent / predecessor-arc / thread / reverse-thread / subtree-size / last-successor
// arrays (Kovács 2015, "Minimum-cost flow algorithms: an experimental evaluation"), so a pivot
// costs O(size of the subtree that moves), and entering arcs are chosen by block search.
//
// Arcs are implicit: arc e < n·m goes from supply node i = ⌊e/m⌋ to demand node n + (e mod m) with
// cost M[e]; arcs n·m + u join node u to an artificial root. Every arc is uncapacitated, so a
// non-tree arc always sits at flow 0 and the only states are TREE and LOWER — which is why flows
// are kept per node, on its predecessor arc (n + m of them, in cache), not per arc (n·m, which at
// n = 4096 is 134 MB of mostly zeros that every pivot's cycle would read at random).
//
// `NetworkSimplex` keeps its basis between solves: successive linear steps of the GW conditional
// gradient share the marginals and have similar costs, so restarting from the previous optimal
// basis (only the potentials are recomputed) needs far fewer pivots than a cold start.
//
// The pivot loop and the cost shift run on a WebAssembly kernel (simplex-kernel.ts) where
// available, bit-identical to the JS methods below, which remain as the fallback.

import { releaseSimplexKernel, type SimplexKernel, simplexKernel } from './simplex-kernel.js';

// LOWER is 0 so that freshly allocated (zeroed) state arrays mark every arc non-tree.
const STATE_LOWER = 0;
const STATE_TREE = 1;
const DIR_UP = 1; // predecessor arc goes from the node up to its parent
const DIR_DOWN = -1; // predecessor arc goes from the parent down to the node

export interface EmdResult {
  /** Optimal plan, n×m row-major. */
  plan: Float64Array;
  /** Σ plan_ij · M_ij. */
  cost: number;
}

export interface SparsePlan {
  rows: Int32Array;
  cols: Int32Array;
  values: Float64Array;
}

/** Throws unless a and b are non-negative, finite and carry the same total mass. */
export function validateMarginals(a: ArrayLike<number>, b: ArrayLike<number>): void {
  const check = (name: string, w: ArrayLike<number>) => {
    if (w.length === 0) throw new Error(`${name} is empty: a measure needs at least one point`);
    for (let i = 0; i < w.length; i++) {
      const v = w[i]!;
      if (!Number.isFinite(v)) throw new Error(`${name}[${i}] is ${v}: weights must be finite numbers`);
      if (v < 0) throw new Error(`${name}[${i}] = ${v} is negative: weights must be ≥ 0`);
    }
  };
  check('a', a);
  check('b', b);
  let sa = 0;
  let sb = 0;
  for (let i = 0; i < a.length; i++) sa += a[i]!;
  for (let j = 0; j < b.length; j++) sb += b[j]!;
  if (sa <= 0) throw new Error('the weights sum to 0: give each measure positive total mass');
  if (Math.abs(sa - sb) > 1e-9 * Math.max(sa, sb)) {
    throw new Error(
      `the two measures carry different mass (Σa = ${sa}, Σb = ${sb}); normalise both to the same total (e.g. 1)`,
    );
  }
}

export class NetworkSimplex {
  readonly n: number;
  readonly m: number;
  private readonly nodeCount: number; // n + m (root excluded)
  private readonly arcCount: number; // n·m original arcs
  private readonly root: number;
  private readonly supply: Float64Array;
  // Costs of the current solve, shifted to be ≥ 0; artificial arcs cost 0 or artCost.
  private readonly cost: Float64Array;
  private artCost = 0;
  /** Flow on each node's predecessor arc (the tree arcs); every other arc carries none. */
  private readonly flow: Float64Array;
  private readonly state: Int8Array;
  private readonly pi: Float64Array;
  private readonly parent: Int32Array;
  private readonly pred: Int32Array;
  private readonly predDir: Int32Array;
  private readonly thread: Int32Array;
  private readonly revThread: Int32Array;
  private readonly succNum: Int32Array;
  private readonly lastSucc: Int32Array;
  private readonly dirtyRevs: Int32Array;
  private readonly blockSize: number;
  /** Pricing and cost shift in WebAssembly (cost, pi and state then live in its memory), or null. */
  private readonly kernel: SimplexKernel | null;
  private nextArc = 0;
  private hasBasis = false;
  private released = false;
  /** σ of a permutation basis not yet solved from (see setPermutationBasis). */
  private pendingPermutation: Int32Array | null = null;
  private arcsTouched = false;
  /** Pivots made by the last solve. */
  lastPivots = 0;

  /** True when pricing runs on the WebAssembly kernel (false: the JS loops). */
  get onKernel(): boolean {
    return this.kernel !== null;
  }

  /**
   * Ends this simplex: its WebAssembly memory, with every arc LOWER again (only tree arcs are in
   * the TREE state, so that is O(n + m)), goes to the next simplex of the same size made in this
   * job — the second start of a GW solve — which so skips the first-touch page faults of fresh
   * memory. This simplex must not be used afterwards.
   */
  release(): void {
    const { kernel } = this;
    if (!kernel || this.released) return;
    this.released = true;
    for (let u = 0; u < this.nodeCount; u++) this.state[this.pred[u]!] = STATE_LOWER;
    releaseSimplexKernel(kernel, this.n, this.m);
  }

  private checkLive(): void {
    if (this.released) throw new Error('network simplex: used after release() (internal error)');
  }

  // Pivot scratch
  private inArc = 0;
  private join = 0;
  private uIn = 0;
  private vIn = 0;
  private uOut = 0;
  private delta = 0;
  private inFlow = 0;

  /** `useKernel: false` keeps the JS loops (for tests and benchmarks that compare the two). */
  constructor(a: ArrayLike<number>, b: ArrayLike<number>, options: { useKernel?: boolean } = {}) {
    validateMarginals(a, b);
    const n = a.length;
    const m = b.length;
    this.n = n;
    this.m = m;
    this.nodeCount = n + m;
    this.arcCount = n * m;
    this.root = n + m;
    const N = n + m + 1;
    this.supply = new Float64Array(N);
    let sa = 0;
    let sb = 0;
    for (let i = 0; i < n; i++) sa += a[i]!;
    for (let j = 0; j < m; j++) sb += b[j]!;
    // b is rescaled to a's total so the network is balanced up to rounding.
    const scale = sa / sb;
    for (let i = 0; i < n; i++) this.supply[i] = a[i]!;
    for (let j = 0; j < m; j++) this.supply[n + j] = -b[j]! * scale;
    const allArcs = this.arcCount + this.nodeCount;
    this.kernel = options.useKernel === false ? null : simplexKernel(n, m);
    const k = this.kernel;
    this.cost = k?.cost ?? new Float64Array(this.arcCount);
    this.flow = k?.flow ?? new Float64Array(N);
    this.state = k?.state ?? new Int8Array(allArcs);
    this.pi = k?.pi ?? new Float64Array(N);
    this.parent = k?.parent ?? new Int32Array(N);
    this.pred = k?.pred ?? new Int32Array(N);
    this.predDir = k?.predDir ?? new Int32Array(N);
    this.thread = k?.thread ?? new Int32Array(N);
    this.revThread = k?.revThread ?? new Int32Array(N);
    this.succNum = k?.succNum ?? new Int32Array(N);
    this.lastSucc = k?.lastSucc ?? new Int32Array(N);
    this.dirtyRevs = k?.dirtyRevs ?? new Int32Array(N);
    // LEMON's block search: √(arcs) candidates per block, at least 10.
    this.blockSize = Math.max(10, Math.ceil(Math.sqrt(this.arcCount)));
  }

  private source(e: number): number {
    return e < this.arcCount
      ? Math.floor(e / this.m)
      : e - this.arcCount < this.n
        ? e - this.arcCount
        : this.root;
  }

  private target(e: number): number {
    if (e < this.arcCount) return this.n + (e % this.m);
    const u = e - this.arcCount;
    return u < this.n ? this.root : u;
  }

  private arcCost(e: number): number {
    return e < this.arcCount ? this.cost[e]! : this.artCostOf(e - this.arcCount);
  }

  private artCostOf(u: number): number {
    return u < this.n ? 0 : this.artCost;
  }

  /**
   * LOWER state on every arc (and no flow). Fresh arrays are zero already (and a fresh WebAssembly
   * memory is not even mapped until written), so the first basis skips the O(n·m) writes.
   */
  private clearArcs(): void {
    if (!this.arcsTouched) {
      this.arcsTouched = true;
      return;
    }
    this.flow.fill(0);
    this.state.fill(STATE_LOWER);
  }

  /** Builds the initial basis: every node hangs off the root by its artificial arc. */
  private initBasis(): void {
    const { nodeCount, root, arcCount } = this;
    this.clearArcs();
    this.pendingPermutation = null;
    this.parent[root] = -1;
    this.pred[root] = -1;
    this.thread[root] = 0;
    this.revThread[0] = root;
    this.succNum[root] = nodeCount + 1;
    this.lastSucc[root] = root - 1;
    for (let u = 0; u < nodeCount; u++) {
      const e = arcCount + u;
      this.parent[u] = root;
      this.pred[u] = e;
      this.thread[u] = u + 1;
      this.revThread[u + 1] = u;
      this.succNum[u] = 1;
      this.lastSucc[u] = u;
      this.state[e] = STATE_TREE;
      if (u < this.n) {
        this.predDir[u] = DIR_UP; // u → root carries u's supply
        this.flow[u] = this.supply[u]!;
      } else {
        this.predDir[u] = DIR_DOWN; // root → u carries u's demand
        this.flow[u] = -this.supply[u]!;
      }
    }
    this.nextArc = 0;
  }

  /**
   * Makes the next solve start from the north-west-corner plan on the given orders of the rows and
   * columns: a staircase of n + m − 1 cells, which is a spanning tree, hence a basis. It is the
   * optimal plan when the cost is Monge in those orders — e.g. −u_i v_j with u and v sorted
   * ascending, the first linear step of GW from the product coupling — and with identity orders
   * and a = b it is the identity coupling. When rows and columns run out together the staircase
   * steps right with a zero cell, so every zero-flow arc points away from the root: the tree is
   * strongly feasible, as the leaving-arc rule requires.
   */
  setNorthWestBasis(rowOrder: ArrayLike<number>, colOrder: ArrayLike<number>): void {
    const { n, m, arcCount, nodeCount, root, supply } = this;
    const checkOrder = (name: string, order: ArrayLike<number>, size: number) => {
      const seen = new Uint8Array(size);
      if (order.length !== size) throw new Error(`${name} has ${order.length} entries, expected ${size}`);
      for (let k = 0; k < size; k++) {
        const v = order[k]!;
        if (!Number.isInteger(v) || v < 0 || v >= size || seen[v]) {
          throw new Error(`${name} is not a permutation of 0…${size - 1}`);
        }
        seen[v] = 1;
      }
    };
    this.checkLive();
    checkOrder('rowOrder', rowOrder, n);
    checkOrder('colOrder', colOrder, m);
    this.clearArcs();
    this.pendingPermutation = null;
    // North-west corner rule.
    const treeArcs: number[] = [];
    const treeFlows: number[] = [];
    let total = 0;
    for (let i = 0; i < n; i++) total += supply[i]!;
    const tiny = 1e-14 * total;
    let ii = 0;
    let jj = 0;
    let r = supply[rowOrder[0]!]!;
    let c = -supply[n + colOrder[0]!]!;
    for (;;) {
      const e = rowOrder[ii]! * m + colOrder[jj]!;
      const x = Math.max(0, Math.min(r, c));
      treeArcs.push(e);
      treeFlows.push(x);
      if (ii === n - 1 && jj === m - 1) break;
      const rowLeft = r - x;
      const colLeft = c - x;
      if (ii === n - 1 || (jj < m - 1 && (rowLeft > tiny || colLeft <= tiny))) {
        jj++;
        r = rowLeft > tiny ? rowLeft : 0;
        c = -supply[n + colOrder[jj]!]!;
      } else {
        ii++;
        c = colLeft > tiny ? colLeft : 0;
        r = supply[rowOrder[ii]!]!;
      }
    }
    // Adjacency of the staircase tree, then a depth-first walk from the root, which hangs off the
    // first column's node by its (zero-flow, outward) artificial arc.
    const degree = new Int32Array(nodeCount);
    for (const e of treeArcs) {
      degree[Math.floor(e / m)]!++;
      degree[n + (e % m)]!++;
    }
    const start = new Int32Array(nodeCount + 1);
    for (let u = 0; u < nodeCount; u++) start[u + 1] = start[u]! + degree[u]!;
    const fill = start.slice(0, nodeCount);
    // Indices into treeArcs (and treeFlows).
    const adjacentArc = new Int32Array(start[nodeCount]!);
    treeArcs.forEach((e, t) => {
      adjacentArc[fill[Math.floor(e / m)]!++] = t;
      adjacentArc[fill[n + (e % m)]!++] = t;
    });
    const first = n + colOrder[0]!;
    const { parent, pred, predDir, flow } = this;
    parent[root] = -1;
    pred[root] = -1;
    parent[first] = root;
    pred[first] = arcCount + first;
    predDir[first] = DIR_DOWN;
    flow[first] = 0;
    this.state[arcCount + first] = STATE_TREE;
    const order = new Int32Array(nodeCount + 1);
    order[0] = root;
    let count = 1;
    const stack = [first];
    while (stack.length > 0) {
      const u = stack.pop()!;
      order[count++] = u;
      for (let k = start[u]!; k < start[u + 1]!; k++) {
        const t = adjacentArc[k]!;
        const e = treeArcs[t]!;
        const s = Math.floor(e / m);
        const d = n + (e % m);
        const v = s === u ? d : s;
        if (v === parent[u]) continue;
        parent[v] = u;
        pred[v] = e;
        predDir[v] = v === s ? DIR_UP : DIR_DOWN;
        flow[v] = treeFlows[t]!;
        this.state[e] = STATE_TREE;
        stack.push(v);
      }
    }
    if (count !== nodeCount + 1) throw new Error('north-west corner basis is not spanning (internal error)');
    this.threadFromPreorder(order);
    this.nextArc = 0;
    this.artCost = 0;
    this.hasBasis = true;
  }

  /**
   * Makes the next solve start from the permutation plan T_{i,σ(i)} = a_i (needs n = m and
   * a_i = b_σ(i)). The basis is a shallow star — every column node hangs off the root by its
   * zero-flow (outward, so strongly feasible) artificial arc and row i hangs below column σ(i) —
   * rather than the north-west staircase, a path 2n deep whose length every pivot walks. The next
   * warm-started solve re-hangs it for its cost (hangPermutation) before pivoting.
   * Returns false (and changes nothing) when the weights do not allow it.
   */
  setPermutationBasis(sigma: ArrayLike<number>): boolean {
    this.checkLive();
    const { n, m, arcCount, root, supply } = this;
    if (n !== m || sigma.length !== n) return false;
    const seen = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const j = sigma[i]!;
      if (!Number.isInteger(j) || j < 0 || j >= n || seen[j]) throw new Error('σ is not a permutation');
      seen[j] = 1;
    }
    for (let i = 0; i < n; i++) {
      if (Math.abs(supply[i]! + supply[n + sigma[i]!]!) > 1e-12 * Math.max(1e-300, supply[i]!)) return false;
    }
    this.clearArcs();
    const { parent, pred, predDir, thread, revThread, succNum, lastSucc } = this;
    parent[root] = -1;
    pred[root] = -1;
    succNum[root] = this.nodeCount + 1;
    let previous = root;
    const link = (u: number) => {
      thread[previous] = u;
      revThread[u] = previous;
      previous = u;
    };
    for (let i = 0; i < n; i++) {
      const d = n + sigma[i]!;
      const artificial = arcCount + d;
      parent[d] = root;
      pred[d] = artificial;
      predDir[d] = DIR_DOWN;
      this.flow[d] = 0;
      this.state[artificial] = STATE_TREE;
      succNum[d] = 2;
      lastSucc[d] = i;
      const e = i * m + sigma[i]!;
      parent[i] = d;
      pred[i] = e;
      predDir[i] = DIR_UP;
      this.state[e] = STATE_TREE;
      this.flow[i] = supply[i]!;
      succNum[i] = 1;
      lastSucc[i] = i;
      link(d);
      link(i);
    }
    thread[previous] = root;
    revThread[root] = previous;
    lastSucc[root] = previous;
    this.nextArc = 0;
    this.artCost = 0;
    this.hasBasis = true;
    this.pendingPermutation = Int32Array.from(sigma);
    return true;
  }

  /**
   * The permutation plan of σ again, on a basis chosen for the cost just loaded. The plan fixes
   * n tree arcs (i, σ(i)); the other n − 1 are degenerate and free to choose, and the star of
   * setPermutationBasis — each column on its own artificial arc — makes the simplex spend one
   * degenerate pivot after another replacing them (≈ 99 % of the pivots of a GW linear step at
   * n = 1024). Here the pairs {i, σ(i)} hang from each other instead: pair t below row s by the
   * zero-flow arc (s, σ(t)), which gives row t the potential π_s + w(s, t) with
   * w(s, t) = c(s, σ(t)) − c(t, σ(t)), and arc (s, σ(t)) the reduced cost w(s, t) + π_s − π_t. So
   * shortest-path distances from one pair in the graph of weights w would make every reduced cost
   * ≥ 0 (the assignment problem's dual; Ahuja, Magnanti & Orlin 1993, §12.4); with σ not yet
   * optimal that graph has negative cycles, so one label-setting (Dijkstra) pass, O(n²), builds a
   * tree that is close to dual feasible, and the pivots fix the rest. Every zero-flow arc points
   * away from the root, so the tree stays strongly feasible.
   */
  private hangPermutation(sigma: Int32Array): void {
    const { n, m, arcCount, root, state, parent, pred, predDir, flow } = this;
    // O(n²): on the kernel where there is one (a cold process would run it in the interpreter).
    const via = this.kernel ? this.kernel.hang(sigma) : this.hangingOrder(sigma);
    // Arcs: the first pair's column keeps its artificial arc; every other column leaves its own
    // for the arc from the row it hangs below.
    for (let t = 0; t < n; t++) {
      const column = n + sigma[t]!;
      if (via[t]! < 0) continue;
      state[arcCount + column] = STATE_LOWER;
      const e = via[t]! * m + sigma[t]!;
      state[e] = STATE_TREE;
      parent[column] = via[t]!;
      pred[column] = e;
      predDir[column] = DIR_DOWN;
      flow[column] = 0;
    }
    parent[root] = -1;
    this.threadFromParents();
  }

  /** hangPermutation's label-setting pass in JS (simplex.wat `hang` where the kernel runs). */
  private hangingOrder(sigma: Int32Array): Int32Array {
    const { n, m, cost } = this;
    const diagonal = new Float64Array(n);
    for (let t = 0; t < n; t++) diagonal[t] = cost[t * m + sigma[t]!]!;
    const dist = new Float64Array(n).fill(Number.POSITIVE_INFINITY);
    const via = new Int32Array(n).fill(-1);
    // Rows not yet attached, compacted as they are taken.
    const open = Int32Array.from({ length: n }, (_, t) => t);
    let openCount = n;
    let next = 0;
    dist[0] = 0;
    while (openCount > 0) {
      const s = open[next]!;
      open[next] = open[--openCount]!;
      const ds = dist[s]!;
      const row = s * m;
      let best = 0;
      let bestDist = Number.POSITIVE_INFINITY;
      for (let k = 0; k < openCount; k++) {
        const t = open[k]!;
        const d = ds + cost[row + sigma[t]!]! - diagonal[t]!;
        if (d < dist[t]!) {
          dist[t] = d;
          via[t] = s;
        }
        if (dist[t]! < bestDist) {
          bestDist = dist[t]!;
          best = k;
        }
      }
      next = best;
    }
    return via;
  }

  /** thread, revThread, succNum and lastSucc of the tree given by parent (a depth-first order). */
  private threadFromParents(): void {
    const { nodeCount, root, parent } = this;
    const childCount = new Int32Array(nodeCount + 3);
    for (let u = 0; u < nodeCount; u++) childCount[parent[u]! + 2]!++;
    for (let u = 0; u <= nodeCount; u++) childCount[u + 2]! += childCount[u + 1]!;
    // children of v: childList[childCount[v + 1] … childCount[v + 2])
    const fill = childCount.slice(1, nodeCount + 2);
    const childList = new Int32Array(nodeCount);
    for (let u = 0; u < nodeCount; u++) childList[fill[parent[u]!]!++] = u;
    const order = new Int32Array(nodeCount + 1);
    const stack = new Int32Array(nodeCount + 1);
    let top = 0;
    let count = 0;
    stack[top++] = root;
    while (top > 0) {
      const u = stack[--top]!;
      order[count++] = u;
      for (let k = childCount[u + 2]! - 1; k >= childCount[u + 1]!; k--) stack[top++] = childList[k]!;
    }
    if (count !== nodeCount + 1) throw new Error('network simplex: basis is not spanning (internal error)');
    this.threadFromPreorder(order);
  }

  /**
   * thread (the preorder as a cycle), revThread, succNum (subtree sizes) and lastSucc (each
   * subtree's last node in the preorder) from a preorder of the spanning tree given by parent.
   */
  private threadFromPreorder(order: Int32Array): void {
    const { nodeCount, parent, thread, revThread, succNum, lastSucc } = this;
    for (let k = 0; k <= nodeCount; k++) {
      const u = order[k]!;
      const next = order[(k + 1) % (nodeCount + 1)]!;
      thread[u] = next;
      revThread[next] = u;
      succNum[u] = 1;
    }
    for (let k = nodeCount; k > 0; k--) succNum[parent[order[k]!]!]! += succNum[order[k]!]!;
    const position = new Int32Array(nodeCount + 1);
    for (let k = 0; k <= nodeCount; k++) position[order[k]!] = k;
    for (let u = 0; u <= nodeCount; u++) lastSucc[u] = order[position[u]! + succNum[u]! - 1]!;
  }

  /** Potentials making every tree arc's reduced cost zero, walking the thread from the root. */
  private computePotentials(): void {
    if (this.kernel) {
      this.kernel.potentials(this.artCost);
      return;
    }
    const { root } = this;
    this.pi[root] = 0;
    for (let u = this.thread[root]!; u !== root; u = this.thread[u]!) {
      this.pi[u] = this.pi[this.parent[u]!]! - this.predDir[u]! * this.arcCost(this.pred[u]!);
    }
  }

  /**
   * Solves min Σ T_ij M_ij over couplings of (a, b). M is n×m row-major. With `warmStart` the
   * previous optimal basis (same marginals) is the starting point.
   */
  solve(M: ArrayLike<number>, warmStart = true): EmdResult {
    this.optimise(M, warmStart, 1);
    // Read the plan from the original arcs: non-tree arcs carry no flow.
    const { arcCount } = this;
    const plan = new Float64Array(arcCount);
    let cost = 0;
    for (let u = 0; u < this.nodeCount; u++) {
      const e = this.pred[u]!;
      if (e < arcCount) {
        const f = this.flow[u]!;
        if (f > 0) {
          plan[e] = f;
          cost += f * M[e]!;
        }
      }
    }
    return { plan, cost };
  }

  /**
   * As solve(), returning only the support of the optimal plan — what the GW linear step needs,
   * without an n×m allocation. `negate` solves for the cost −M without materialising it.
   */
  solveSparse(M: ArrayLike<number>, options: { warmStart?: boolean; negate?: boolean } = {}): SparsePlan {
    this.optimise(M, options.warmStart ?? true, options.negate ? -1 : 1);
    return this.sparsePlan();
  }

  private optimise(M: ArrayLike<number>, warmStart: boolean, sign: 1 | -1): void {
    this.checkLive();
    const { n, m, arcCount } = this;
    if (M.length !== arcCount) {
      throw new Error(`cost matrix has ${M.length} entries, expected ${n}×${m} = ${arcCount}`);
    }
    // Shift costs to be ≥ 0 (the optimal plan is unchanged because the total mass is fixed) and
    // price the artificial arcs above any real path, as LEMON does: (max cost + 1)·nodes.
    const [lo, hi] = this.loadCosts(M, sign);
    const range = hi - lo;
    // LEMON uses (max + 1)·nodes for integer costs; a scale-free version for real costs.
    const newArtCost = (range > 0 ? range : 1) * 2 * (this.nodeCount + 1);
    if (!warmStart || !this.hasBasis) {
      this.artCost = newArtCost;
      this.initBasis();
    } else {
      if (this.pendingPermutation) this.hangPermutation(this.pendingPermutation);
      this.pendingPermutation = null;
      // Keep the basis; the artificial arcs still in it carry no flow, so their price only has to
      // stay above any real path.
      this.artCost = Math.max(this.artCost, newArtCost);
    }
    this.computePotentials();
    // Reduced costs below −tolerance count as improving. Potentials reach the artificial cost, so
    // rounding in c + π_i − π_j is a few ulps of it; a smaller threshold could pivot on noise.
    const tolerance = 16 * Number.EPSILON * this.artCost;
    let pivots = 0;
    if (this.kernel) {
      try {
        pivots = this.kernel.run(this.nextArc, this.blockSize, tolerance, this.artCost);
      } catch {
        // The kernel traps where findLeavingArc throws.
        throw new Error('network simplex: unbounded cycle (internal error)');
      }
      this.nextArc = this.kernel.nextArc();
    }
    while (!this.kernel && this.findEnteringArc(tolerance)) {
      this.findJoinNode();
      this.findLeavingArc();
      this.changeFlow();
      this.updateTreeStructure();
      this.updatePotential();
      pivots++;
    }
    this.lastPivots = pivots;
    this.hasBasis = true;
  }

  /** cost ← sign·M − min(sign·M); returns [min, max] of sign·M. Throws on a non-finite cost. */
  private loadCosts(M: ArrayLike<number>, sign: 1 | -1): [number, number] {
    const { arcCount, m, cost, kernel } = this;
    const nonFinite = (e: number): never => {
      throw new Error(
        `cost M[${Math.floor(e / m)}, ${e % m}] is ${sign * M[e]!}: costs must be finite numbers`,
      );
    };
    if (kernel) {
      cost.set(M);
      const range = kernel.shiftCosts(sign);
      if ('nonFinite' in range) return nonFinite(range.nonFinite);
      return [range.lo, range.hi];
    }
    let lo = Number.POSITIVE_INFINITY;
    let hi = Number.NEGATIVE_INFINITY;
    for (let e = 0; e < arcCount; e++) {
      const c = sign * M[e]!;
      if (!Number.isFinite(c)) nonFinite(e);
      if (c < lo) lo = c;
      if (c > hi) hi = c;
    }
    for (let e = 0; e < arcCount; e++) cost[e] = sign * M[e]! - lo;
    return [lo, hi];
  }

  /** The support of the last plan (tree arcs with positive flow), in row-major order. */
  sparsePlan(): SparsePlan {
    const { pred, flow, arcCount, m, nodeCount } = this;
    // Arc e of node u as e·(nodes + 1) + u: exact in a double (arcs < 2²⁸), so a numeric
    // typed-array sort, with no comparator calls, orders them by arc and keeps the node.
    const keys = new Float64Array(nodeCount);
    let count = 0;
    for (let u = 0; u < nodeCount; u++) {
      const e = pred[u]!;
      if (e < arcCount && flow[u]! > 0) keys[count++] = e * (nodeCount + 1) + u;
    }
    const sorted = keys.subarray(0, count).sort();
    const rows = new Int32Array(count);
    const cols = new Int32Array(count);
    const values = new Float64Array(count);
    for (let k = 0; k < count; k++) {
      const key = sorted[k]!;
      const e = Math.floor(key / (nodeCount + 1));
      rows[k] = (e / m) | 0;
      cols[k] = e - rows[k]! * m;
      values[k] = flow[key - e * (nodeCount + 1)]!;
    }
    return { rows, cols, values };
  }

  /**
   * Block search (LEMON): scan the real arcs cyclically in blocks of √(arcs) and take the most
   * negative reduced cost of the first block that has one. Artificial arcs are never priced (LEMON
   * does the same for balanced problems). Tree arcs are skipped by state: their reduced cost is
   * zero only up to rounding that accumulates in the potentials over many pivots.
   */
  private findEnteringArc(tolerance: number): boolean {
    const { arcCount, m, n, cost, pi, state, blockSize } = this;
    let min = -tolerance;
    let best = -1;
    let e = this.nextArc;
    let scanned = 0;
    while (scanned < arcCount) {
      let left = Math.min(blockSize, arcCount - scanned);
      scanned += left;
      // A block may span rows; within a row segment the source potential is fixed and column j's
      // potential sits at pi[n + j] = pi[offset + e], so the inner loop is one load, add and compare
      // per arc (2–3× faster than tracking row and column per arc).
      while (left > 0) {
        const i = (e / m) | 0;
        const rowStart = i * m;
        const stop = Math.min(rowStart + m, e + left);
        left -= stop - e;
        const piSource = pi[i]!;
        const offset = n - rowStart;
        for (; e < stop; e++) {
          const c = cost[e]! + piSource - pi[offset + e]!;
          if (c < min && state[e] === STATE_LOWER) {
            min = c;
            best = e;
          }
        }
        if (e === arcCount) e = 0;
      }
      if (best >= 0) break;
    }
    if (best < 0) return false;
    this.inArc = best;
    this.nextArc = e;
    return true;
  }

  private findJoinNode(): void {
    let u = this.source(this.inArc);
    let v = this.target(this.inArc);
    const { succNum, parent } = this;
    while (u !== v) {
      if (succNum[u]! < succNum[v]!) u = parent[u]!;
      else v = parent[v]!;
    }
    this.join = u;
  }

  /** The arc that first reaches zero flow when pushing flow around the cycle closed by the entering arc. */
  private findLeavingArc(): void {
    const first = this.source(this.inArc);
    const second = this.target(this.inArc);
    const { parent, predDir, flow, join } = this;
    let delta = Number.POSITIVE_INFINITY;
    let result = 0;
    let uOut = -1;
    // From `first` up to the join, flow travels downwards: arcs pointing up lose flow.
    for (let u = first; u !== join; u = parent[u]!) {
      if (predDir[u] === DIR_UP) {
        const d = flow[u]!;
        if (d < delta) {
          delta = d;
          uOut = u;
          result = 1;
        }
      }
    }
    // From `second` up to the join, flow travels upwards: arcs pointing down lose flow. `<=` picks
    // the last blocking arc on this side, which keeps the tree strongly feasible (Cunningham 1976).
    for (let u = second; u !== join; u = parent[u]!) {
      if (predDir[u] === DIR_DOWN) {
        const d = flow[u]!;
        if (d <= delta) {
          delta = d;
          uOut = u;
          result = 2;
        }
      }
    }
    if (uOut < 0) throw new Error('network simplex: unbounded cycle (internal error)');
    if (result === 1) {
      this.uIn = first;
      this.vIn = second;
    } else {
      this.uIn = second;
      this.vIn = first;
    }
    this.uOut = uOut;
    this.delta = delta;
  }

  private changeFlow(): void {
    const { inArc, join, parent, pred, predDir, flow, delta } = this;
    // The entering arc's flow (it had none); it moves to its node in the tree update, where the
    // leaving arc's slot — zero in exact arithmetic, rounding residue here — is overwritten.
    this.inFlow = 0;
    if (delta > 0) {
      this.inFlow = delta;
      for (let u = this.source(inArc); u !== join; u = parent[u]!) flow[u]! -= predDir[u]! * delta;
      for (let u = this.target(inArc); u !== join; u = parent[u]!) flow[u]! += predDir[u]! * delta;
    }
    this.state[inArc] = STATE_TREE;
    this.state[pred[this.uOut]!] = STATE_LOWER;
  }

  /** Re-hangs the subtree cut off by the leaving arc below the entering arc (LEMON 1.3 updateTreeStructure). */
  private updateTreeStructure(): void {
    const {
      parent,
      pred,
      predDir,
      thread,
      revThread,
      succNum,
      lastSucc,
      dirtyRevs,
      inArc,
      uIn,
      vIn,
      uOut,
      join,
    } = this;
    const oldRevThread = revThread[uOut]!;
    const oldSuccNum = succNum[uOut]!;
    const oldLastSucc = lastSucc[uOut]!;
    const vOut = parent[uOut]!;

    if (uIn === uOut) {
      parent[uIn] = vIn;
      pred[uIn] = inArc;
      predDir[uIn] = uIn === this.source(inArc) ? DIR_UP : DIR_DOWN;
      this.flow[uIn] = this.inFlow;
      if (thread[vIn] !== uOut) {
        let after = thread[oldLastSucc]!;
        thread[oldRevThread] = after;
        revThread[after] = oldRevThread;
        after = thread[vIn]!;
        thread[vIn] = uOut;
        revThread[uOut] = vIn;
        thread[oldLastSucc] = after;
        revThread[after] = oldLastSucc;
      }
    } else {
      const threadContinue = oldRevThread === vIn ? thread[oldLastSucc]! : thread[vIn]!;
      let stem = uIn;
      let parStem = vIn;
      let last = lastSucc[uIn]!;
      let after = thread[last]!;
      thread[vIn] = uIn;
      let dirty = 0;
      dirtyRevs[dirty++] = vIn;
      while (stem !== uOut) {
        const nextStem = parent[stem]!;
        thread[last] = nextStem;
        dirtyRevs[dirty++] = last;
        const before = revThread[stem]!;
        thread[before] = after;
        revThread[after] = before;
        parent[stem] = parStem;
        parStem = stem;
        stem = nextStem;
        last = lastSucc[stem] === lastSucc[parStem] ? revThread[parStem]! : lastSucc[stem]!;
        after = thread[last]!;
      }
      parent[uOut] = parStem;
      thread[last] = threadContinue;
      revThread[threadContinue] = last;
      lastSucc[uOut] = last;
      if (oldRevThread !== vIn) {
        thread[oldRevThread] = after;
        revThread[after] = oldRevThread;
      }
      for (let i = 0; i < dirty; i++) {
        const u = dirtyRevs[i]!;
        revThread[thread[u]!] = u;
      }
      let tmpSc = 0;
      const tmpLs = lastSucc[uOut]!;
      for (let u = uOut, p = parent[u]!; u !== uIn; u = p, p = parent[u]!) {
        pred[u] = pred[p]!;
        predDir[u] = -predDir[p]!;
        this.flow[u] = this.flow[p]!;
        tmpSc += succNum[u]! - succNum[p]!;
        succNum[u] = tmpSc;
        lastSucc[p] = tmpLs;
      }
      pred[uIn] = inArc;
      predDir[uIn] = uIn === this.source(inArc) ? DIR_UP : DIR_DOWN;
      this.flow[uIn] = this.inFlow;
      succNum[uIn] = oldSuccNum;
    }

    const upLimitOut = lastSucc[join] === vIn ? join : -1;
    const lastSuccOut = lastSucc[uOut]!;
    for (let u = vIn; u !== -1 && lastSucc[u] === vIn; u = parent[u]!) lastSucc[u] = lastSuccOut;
    if (join !== oldRevThread && vIn !== oldRevThread) {
      for (let u = vOut; u !== upLimitOut && lastSucc[u] === oldLastSucc; u = parent[u]!) {
        lastSucc[u] = oldRevThread;
      }
    } else if (lastSuccOut !== oldLastSucc) {
      for (let u = vOut; u !== upLimitOut && lastSucc[u] === oldLastSucc; u = parent[u]!) {
        lastSucc[u] = lastSuccOut;
      }
    }
    for (let u = vIn; u !== join; u = parent[u]!) succNum[u]! += oldSuccNum;
    for (let u = vOut; u !== join; u = parent[u]!) succNum[u]! -= oldSuccNum;
  }

  /** Shifts the potentials of the re-hung subtree so the entering arc has zero reduced cost. */
  private updatePotential(): void {
    const { pi, thread, lastSucc, uIn, vIn } = this;
    const sigma = pi[vIn]! - pi[uIn]! - this.predDir[uIn]! * this.arcCost(this.inArc);
    const end = thread[lastSucc[uIn]!]!;
    for (let u = uIn; u !== end; u = thread[u]!) pi[u]! += sigma;
  }
}

/**
 * Exact optimal transport: the plan T ≥ 0 with row sums a and column sums b minimising Σ T_ij M_ij
 * (M n×m row-major). Throws on negative/NaN weights, unequal masses or non-finite costs.
 */
export function emd(a: Float64Array, b: Float64Array, M: Float64Array): EmdResult {
  const n = a.length;
  const m = b.length;
  if (M.length !== n * m) {
    throw new Error(
      `cost matrix has ${M.length} entries, but a has ${n} and b has ${m} weights (need ${n * m})`,
    );
  }
  return new NetworkSimplex(a, b).solve(M, false);
}
